"""Every list of choices, declared once: config validation, argparse's ``choices=`` and the code that implements
each choice read them from here.

Plain data, importable without PyTorch, so ``cnnzoo --help`` builds its parser without loading it.
"""

__all__ = ["DATASETS", "DATASET_ALIASES", "canonical_dataset", "PRECISIONS", "BENCH_PRECISIONS", "OPTIMIZERS", "SCHEDULES", "PLATEAU_METRICS", "INITS", "TTA_MODES", "PROGRESS", "NORMALIZE"]

# cnnzoo.data.sources.load_dataset
DATASETS = ("digits", "mnist", "fashion-mnist", "kmnist", "cifar10", "cifar100", "folder")
# Other spellings people use (torchvision's class names, hyphens and underscores).
DATASET_ALIASES = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "cifar-100": "cifar100"}
# cnnzoo.runtime.resolve_precision: auto is the measured best for the device and model; fp16 needs CUDA.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# cnnzoo.bench.benchmark: fp16 would need a gradient scaler, which the timed step leaves out.
BENCH_PRECISIONS = ("auto", "fp32", "bf16")
# cnnzoo.train.optim.build_optimizer and lr_factor
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "multistep", "exponential", "cosine", "onecycle", "plateau")
# cnnzoo.train.optim.plateau_steps: the validation number the plateau schedule watches (accuracy up, loss down).
PLATEAU_METRICS = ("val_acc", "val_loss")
# cnnzoo.builder.create_model(init=): the family's own initialisation (paper), torchvision's scheme for models with
# a torchvision twin, or one scheme for every convolution and linear layer (biases 0, norms 1 and 0); dirac: the
# family's own, then each convolution with at least as many filters as inputs passes its inputs through its first
# filters (airbench).
INITS = ("paper", "torchvision", "xavier_uniform", "xavier_normal", "kaiming_fan_in", "kaiming_fan_out", "dirac")
# cnnzoo.train.evaluate: the views whose probabilities are averaged at test time: the image and its mirror (flip);
# AlexNet's ten crops (tencrop); airbench's six views, the image and its mirror weighted 1/4 each, the image
# shifted by one pixel each way diagonally (reflect-padded) and their mirrors 1/8 each (flip_translate).
TTA_MODES = ("flip", "tencrop", "flip_translate")
# cnnzoo.train.trainer: the statistics inputs are normalised with: auto (the pretrained weights' where known,
# else the dataset's), dataset, weights (an error where unknown), imagenet.
NORMALIZE = ("auto", "dataset", "weights", "imagenet")
# cnnzoo.io.Progress (the trainer, eval, benchmark, compare): a bar on a terminal (auto), always (bar), never (none).
PROGRESS = ("auto", "bar", "none")


def canonical_dataset(name: str) -> str:
    """``"FashionMNIST"``, ``"fashion_mnist"`` -> ``"fashion-mnist"``: the name :data:`DATASETS` lists."""
    key = str(name).lower().replace("_", "-")
    return DATASET_ALIASES.get(key, key)
