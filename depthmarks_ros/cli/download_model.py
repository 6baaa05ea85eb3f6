"""`depthmarks download-model HUB_ID -o DIR`: for a machine with internet: download a monocular depth
model from the Hugging Face hub into DIR (config, weights, preprocessor), ready for model:=DIR.

Examples: depth-anything/Depth-Anything-V2-Small-hf, depth-anything/Depth-Anything-V2-Base-hf,
Intel/dpt-hybrid-midas, Intel/dpt-large.
"""
from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument('model', help='hub id, e.g. depth-anything/Depth-Anything-V2-Small-hf')
    p.add_argument('--output', '-o', required=True)


def run(args) -> int:
    from depthmarks_ros.core.mono.models import hub_offline
    if hub_offline():
        print('HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set: unset both on a machine with internet to download')
        return 2
    from huggingface_hub import snapshot_download
    path = snapshot_download(args.model, local_dir=args.output,
                             allow_patterns=['*.json', '*.safetensors', '*.bin', '*.txt', '*.md'])
    from transformers import AutoModelForDepthEstimation
    AutoModelForDepthEstimation.from_pretrained(path, local_files_only=True)  # check it loads
    print(f'downloaded {args.model} to {path}; use model:={path}')
    return 0
