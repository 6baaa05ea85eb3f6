"""Full-batch L-BFGS for the small models fitted by NLL (face sigma models, fusion sigma terms)."""
from __future__ import annotations


def minimise_lbfgs(params, loss_fn, max_iter: int = 300) -> None:
    """Minimise loss_fn() over the torch tensors ``params`` (requires_grad) in place by L-BFGS (strong
    Wolfe line search)."""
    import torch
    opt = torch.optim.LBFGS(params, max_iter=max_iter, line_search_fn='strong_wolfe')

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    opt.step(closure)
