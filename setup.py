"""transferjax: zero-shot source-CNN ranking by conditional mutual information, in JAX."""
from setuptools import find_packages, setup

setup(
    name="transferjax",
    version="0.1.0",
    description=("Rank pre-trained source CNNs for a small target task by "
                 "I(Y; F_source | T_target) (Afridi, Ross & Shapiro 2018), "
                 "with a vmapped zoo trainer, fine-tuning ground truth and "
                 "modern transferability baselines."),
    packages=find_packages(include=["transferjax", "transferjax.*",
                                    "experiments", "benchmarks", "configs"]),
    python_requires=">=3.10",
    # Lower bounds are the versions this project was built and tested with.
    install_requires=[
        "jax>=0.10.2",
        "flax>=0.12.8",
        "optax>=0.2.8",
        "numpy>=2.0",
        "scipy>=1.17",
        "scikit-learn>=1.9",
        "scikit-image>=0.26",
        "mlxtend>=0.25",
        "tensorflow-datasets>=4.9.10",
        "absl-py>=2.5",
        "orbax-checkpoint>=0.12.8",
        "matplotlib>=3.11",
        "tqdm>=4.70",
        "pillow>=10.0",  # folder: targets (PNG/JPEG image folders)
        # configs/: --config files with dotted command-line overrides
        # (config_flags), the convention of big_vision and the flax examples.
        "ml_collections>=1.1",
    ],
    extras_require={
        "test": ["pytest>=9.0", "pytest-xdist>=3.8", "chex>=0.1.92",
                 "nbclient>=0.11", "nbformat>=5.11", "ipykernel>=7.4"],
    },
)
