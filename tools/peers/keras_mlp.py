"""The seed's Keras program (or, with --model cnn, examples/models/cnn.json)
on Fashion-MNIST, timed.

Dense(64, relu) -> Dense(64, relu) -> Dense(10, softmax); the CNN:
Conv2D(32, 3, same, relu, he_normal) -> BatchNormalization(0.99, 1e-3) ->
MaxPool2D -> Conv2D(64, ...) -> BatchNormalization -> MaxPool2D -> Flatten
-> Dense(128, relu, he_normal) -> Dropout(0.3) -> Dense(10, softmax),
channels last. Adam (lr 1e-3),
sparse categorical cross-entropy, shuffled each epoch. Only model.fit is
timed. Prints one JSON line.
"""
import argparse
import json
import os
import sys
import time

import fmnist

args = fmnist.common_args(argparse.ArgumentParser(description=__doc__)).parse_args()

# Thread pools are fixed when TensorFlow starts; set them before any op.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(args.threads)
tf.config.threading.set_inter_op_parallelism_threads(args.threads)
tf.keras.utils.set_random_seed(args.seed)
from tensorflow.keras import layers  # noqa: E402

try:
    import keras
    keras_version = keras.__version__
except ImportError:
    keras_version = "bundled"

x_train, y_train, x_test, y_test = fmnist.load(args.data)

if args.model == "cnn":
    x_train, x_test = x_train.reshape(-1, 28, 28, 1), x_test.reshape(-1, 28, 28, 1)
    model = tf.keras.Sequential([
        tf.keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, 3, padding="same", activation="relu", kernel_initializer="he_normal"),
        layers.BatchNormalization(momentum=0.99, epsilon=1e-3),
        layers.MaxPool2D(2),
        layers.Conv2D(64, 3, padding="same", activation="relu", kernel_initializer="he_normal"),
        layers.BatchNormalization(momentum=0.99, epsilon=1e-3),
        layers.MaxPool2D(2),
        layers.Flatten(),
        layers.Dense(128, activation="relu", kernel_initializer="he_normal"),
        layers.Dropout(0.3),
        layers.Dense(10, activation="softmax"),
    ])
else:
    model = tf.keras.Sequential([
        tf.keras.Input(shape=(784,)),
        layers.Dense(64, activation="relu"),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=1e-3),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])


class EpochTimes(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.t0)


cb = EpochTimes()
t0 = time.perf_counter()
# verbose=0: the progress bar costs time per step; leaving it out gives
# Keras its best figure.
model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch, shuffle=True, verbose=0, callbacks=[cb])
fit_s = time.perf_counter() - t0
_, acc = model.evaluate(x_test, y_test, batch_size=256, verbose=0)

n = len(x_train)
print(json.dumps({
    "peer": "keras",
    "model": args.model,
    "version": f"tensorflow {tf.__version__}, keras {keras_version}",
    "samples_per_s": args.epochs * n / fit_s,
    "last_epoch_samples_per_s": n / cb.times[-1] if cb.times else None,
    "test_accuracy": float(acc),
    "epochs": args.epochs,
    "batch": args.batch,
    "threads": args.threads,
    "fit_seconds": fit_s,
    "epoch_seconds": cb.times,
}))
sys.stdout.flush()
