from pathlib import Path

from setuptools import find_packages, setup

# Pinned: the versions export --onnx was checked with (tf2onnx 1.17 converts TensorFlow 2.21 graphs at opset 17).
ONNX = ["tf2onnx==1.17.0", "onnx==1.23.*", "onnxruntime==1.32.*"]
# translate of videos (mp4, webm, mkv, mov, avi): PyAV, FFmpeg's libraries in a wheel (animations need only Pillow)
VIDEO = ["av==18.1.*"]

setup(
    name="tf_cyclegan",
    version="0.1.0",
    description="CycleGAN (Zhu et al., ICCV 2017) for TensorFlow 2 / Keras 3: train, export to TF Serving and TFLite",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["tf_cyclegan", "tf_cyclegan.*"]),
    include_package_data=True,
    package_data={
        "tf_cyclegan": [
            "datasets/fluent/**/*",
            "datasets/fluent/*",
            "datasets/emoji/**/*",
            "datasets/emoji/*",
            "presets/*.yaml",
            "page/*",
        ]
    },
    python_requires=">=3.10,<3.14",
    install_requires=[
        "tensorflow>=2.18,<2.22",
        "keras>=3.6,<4",
        "tensorboard>=2.18,<2.22",
        "tensorflow-datasets>=4.9.7,<5",
        # tensorflow-datasets 4.9.10 imports it without declaring it.
        "importlib_resources>=6",
        "numpy>=1.26",
        "pillow>=10",
        "pyyaml>=6",
        "ai-edge-litert>=1.2",
    ],
    extras_require={
        # ruff pinned: its formatter's output changes between releases, and .ci/run checks the format
        "dev": ["pytest>=8", "pytest-timeout>=2.3", "pytest-xdist>=3.5", "ruff==0.17.6", *ONNX, *VIDEO],
        # export --onnx, translate --onnx_model (the tests run them, so dev has them too)
        "onnx": ONNX,
        "video": VIDEO,
        # benchmarks/*.py --against_torch: the CPU build on this disk; never a runtime dependency
        "torch": ["torch==2.13.0"],
    },
    entry_points={
        "console_scripts": [
            "tf-cyclegan-train=tf_cyclegan.train:main",
            "tf-cyclegan-data=tf_cyclegan.data.__main__:main",
            "tf-cyclegan-translate=tf_cyclegan.translate:main",
            "tf-cyclegan-export=tf_cyclegan.export:main",
            "tf-cyclegan-evaluate=tf_cyclegan.evaluate:main",
        ]
    },
)
