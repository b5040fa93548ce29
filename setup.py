"""PointCALIP: training-free and few-shot 3D point-cloud recognition with CLIP and CALIP.

`projection/` and `datasets/` are installed as the subpackages `pointcalip.projection` and
`pointcalip.datasets` (as Open3D-ML installs `ml3d/` as `open3d._ml3d`), so installing
PointCALIP never shadows other top-level packages called `datasets` or `projection`.
"""
from setuptools import find_packages, setup

CPU_FAST = ["onnxruntime>=1.17", "onnx>=1.16"]

setup(
    name="pointcalip",
    version="0.1.0",
    description="Zero-shot and few-shot 3D point-cloud recognition with CLIP + CALIP attention",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=[
        "pointcalip", *(f"pointcalip.{p}" for p in find_packages("pointcalip")),   # commands, ...
        "pointcalip.projection", "pointcalip.datasets", "pointcalip.configs",
    ],
    package_dir={
        "pointcalip": "pointcalip",
        "pointcalip.projection": "projection",
        "pointcalip.datasets": "datasets",
        "pointcalip.configs": "configs",  # YAML data only: configs, prompts, class names
    },
    package_data={"pointcalip.configs": ["*.yaml", "*/*.yaml"]},
    install_requires=[
        # Users bring their own (CUDA) torch; these are the ranges the code is written for.
        "torch>=2.0,<3",
        "torchvision>=0.15",
        "numpy>=1.23",
        "openai-clip>=1.0",  # imports as `clip`; needs setuptools<81 (pkg_resources)
        "setuptools<81",
        "open3d>=0.17",
        "h5py>=3.6",
        "pyyaml>=6.0",
        "tqdm>=4.60",
        "pillow>=9.0",
        "matplotlib>=3.7",   # PNG figures of ablations, few-shot curves and `explain` (Agg, headless)
    ],
    extras_require={
        # OpenCLIP backbones (`--set backbone=open_clip:ViT-H-14/laion2b_s32b_b79k`); brings timm,
        # huggingface_hub and safetensors. 3.0: the first release with `local-dir:` models (and
        # with `forward_intermediates`, which PointCALIP reads ViT tokens with, since 2.32).
        "open_clip": ["open_clip_torch>=3.0"],
        # The faster exact CPU engine of the image tower (pointcalip/engine.py): ONNX Runtime
        # runs it, onnx is what torch.onnx.export needs to write the graph.
        "cpu-fast": CPU_FAST,
        # tests/test_openclip.py and tests/test_engine.py never skip; tests/test_docs.py builds
        # docs/ with MkDocs in strict mode (1.6: the first to validate anchors)
        "test": ["pytest>=7", "open_clip_torch>=3.0", *CPU_FAST, "mkdocs>=1.6"],
    },
    entry_points={"console_scripts": ["pointcalip=pointcalip.cli:main"]},
)
