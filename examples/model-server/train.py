#!/usr/bin/env python3
"""Trains the example Iris classifier and writes examples/models/iris/model.json.

The model is a multinomial logistic regression (softmax over three classes) fitted by plain
batch gradient descent on standardised features, then folded back to raw centimetres so the
server only computes `argmax(weights . x + bias)`. Everything here is the Python standard
library: the 150 rows of Fisher's Iris data are below (the version scikit-learn ships, with the
two UCI transcription errors of rows 35 and 38 corrected), and the run is deterministic, so
running it again rewrites the same file byte for byte.

    python3 examples/model-server/train.py            # writes examples/models/iris/model.json
    python3 examples/model-server/train.py --check    # fails if the file is out of date
"""

import json
import math
import os
import re
import sys

# sepal length, sepal width, petal length, petal width (cm), class
# (0 = setosa, 1 = versicolor, 2 = virginica)
IRIS_CSV = """
5.1,3.5,1.4,0.2,0
4.9,3.0,1.4,0.2,0
4.7,3.2,1.3,0.2,0
4.6,3.1,1.5,0.2,0
5.0,3.6,1.4,0.2,0
5.4,3.9,1.7,0.4,0
4.6,3.4,1.4,0.3,0
5.0,3.4,1.5,0.2,0
4.4,2.9,1.4,0.2,0
4.9,3.1,1.5,0.1,0
5.4,3.7,1.5,0.2,0
4.8,3.4,1.6,0.2,0
4.8,3.0,1.4,0.1,0
4.3,3.0,1.1,0.1,0
5.8,4.0,1.2,0.2,0
5.7,4.4,1.5,0.4,0
5.4,3.9,1.3,0.4,0
5.1,3.5,1.4,0.3,0
5.7,3.8,1.7,0.3,0
5.1,3.8,1.5,0.3,0
5.4,3.4,1.7,0.2,0
5.1,3.7,1.5,0.4,0
4.6,3.6,1.0,0.2,0
5.1,3.3,1.7,0.5,0
4.8,3.4,1.9,0.2,0
5.0,3.0,1.6,0.2,0
5.0,3.4,1.6,0.4,0
5.2,3.5,1.5,0.2,0
5.2,3.4,1.4,0.2,0
4.7,3.2,1.6,0.2,0
4.8,3.1,1.6,0.2,0
5.4,3.4,1.5,0.4,0
5.2,4.1,1.5,0.1,0
5.5,4.2,1.4,0.2,0
4.9,3.1,1.5,0.2,0
5.0,3.2,1.2,0.2,0
5.5,3.5,1.3,0.2,0
4.9,3.6,1.4,0.1,0
4.4,3.0,1.3,0.2,0
5.1,3.4,1.5,0.2,0
5.0,3.5,1.3,0.3,0
4.5,2.3,1.3,0.3,0
4.4,3.2,1.3,0.2,0
5.0,3.5,1.6,0.6,0
5.1,3.8,1.9,0.4,0
4.8,3.0,1.4,0.3,0
5.1,3.8,1.6,0.2,0
4.6,3.2,1.4,0.2,0
5.3,3.7,1.5,0.2,0
5.0,3.3,1.4,0.2,0
7.0,3.2,4.7,1.4,1
6.4,3.2,4.5,1.5,1
6.9,3.1,4.9,1.5,1
5.5,2.3,4.0,1.3,1
6.5,2.8,4.6,1.5,1
5.7,2.8,4.5,1.3,1
6.3,3.3,4.7,1.6,1
4.9,2.4,3.3,1.0,1
6.6,2.9,4.6,1.3,1
5.2,2.7,3.9,1.4,1
5.0,2.0,3.5,1.0,1
5.9,3.0,4.2,1.5,1
6.0,2.2,4.0,1.0,1
6.1,2.9,4.7,1.4,1
5.6,2.9,3.6,1.3,1
6.7,3.1,4.4,1.4,1
5.6,3.0,4.5,1.5,1
5.8,2.7,4.1,1.0,1
6.2,2.2,4.5,1.5,1
5.6,2.5,3.9,1.1,1
5.9,3.2,4.8,1.8,1
6.1,2.8,4.0,1.3,1
6.3,2.5,4.9,1.5,1
6.1,2.8,4.7,1.2,1
6.4,2.9,4.3,1.3,1
6.6,3.0,4.4,1.4,1
6.8,2.8,4.8,1.4,1
6.7,3.0,5.0,1.7,1
6.0,2.9,4.5,1.5,1
5.7,2.6,3.5,1.0,1
5.5,2.4,3.8,1.1,1
5.5,2.4,3.7,1.0,1
5.8,2.7,3.9,1.2,1
6.0,2.7,5.1,1.6,1
5.4,3.0,4.5,1.5,1
6.0,3.4,4.5,1.6,1
6.7,3.1,4.7,1.5,1
6.3,2.3,4.4,1.3,1
5.6,3.0,4.1,1.3,1
5.5,2.5,4.0,1.3,1
5.5,2.6,4.4,1.2,1
6.1,3.0,4.6,1.4,1
5.8,2.6,4.0,1.2,1
5.0,2.3,3.3,1.0,1
5.6,2.7,4.2,1.3,1
5.7,3.0,4.2,1.2,1
5.7,2.9,4.2,1.3,1
6.2,2.9,4.3,1.3,1
5.1,2.5,3.0,1.1,1
5.7,2.8,4.1,1.3,1
6.3,3.3,6.0,2.5,2
5.8,2.7,5.1,1.9,2
7.1,3.0,5.9,2.1,2
6.3,2.9,5.6,1.8,2
6.5,3.0,5.8,2.2,2
7.6,3.0,6.6,2.1,2
4.9,2.5,4.5,1.7,2
7.3,2.9,6.3,1.8,2
6.7,2.5,5.8,1.8,2
7.2,3.6,6.1,2.5,2
6.5,3.2,5.1,2.0,2
6.4,2.7,5.3,1.9,2
6.8,3.0,5.5,2.1,2
5.7,2.5,5.0,2.0,2
5.8,2.8,5.1,2.4,2
6.4,3.2,5.3,2.3,2
6.5,3.0,5.5,1.8,2
7.7,3.8,6.7,2.2,2
7.7,2.6,6.9,2.3,2
6.0,2.2,5.0,1.5,2
6.9,3.2,5.7,2.3,2
5.6,2.8,4.9,2.0,2
7.7,2.8,6.7,2.0,2
6.3,2.7,4.9,1.8,2
6.7,3.3,5.7,2.1,2
7.2,3.2,6.0,1.8,2
6.2,2.8,4.8,1.8,2
6.1,3.0,4.9,1.8,2
6.4,2.8,5.6,2.1,2
7.2,3.0,5.8,1.6,2
7.4,2.8,6.1,1.9,2
7.9,3.8,6.4,2.0,2
6.4,2.8,5.6,2.2,2
6.3,2.8,5.1,1.5,2
6.1,2.6,5.6,1.4,2
7.7,3.0,6.1,2.3,2
6.3,3.4,5.6,2.4,2
6.4,3.1,5.5,1.8,2
6.0,3.0,4.8,1.8,2
6.9,3.1,5.4,2.1,2
6.7,3.1,5.6,2.4,2
6.9,3.1,5.1,2.3,2
5.8,2.7,5.1,1.9,2
6.8,3.2,5.9,2.3,2
6.7,3.3,5.7,2.5,2
6.7,3.0,5.2,2.3,2
6.3,2.5,5.0,1.9,2
6.5,3.0,5.2,2.0,2
6.2,3.4,5.4,2.3,2
5.9,3.0,5.1,1.8,2
"""

FEATURES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]
CLASSES = ["setosa", "versicolor", "virginica"]

# Gradient descent settings: enough steps for the loss to settle, a little L2 so that the
# weights stay finite on the linearly separable setosa class.
EPOCHS = 5000
LEARNING_RATE = 0.5
L2 = 0.001

# Examples every Iris tutorial uses; the trained model must get them right.
CHECKS = [
    ([5.1, 3.5, 1.4, 0.2], 0),
    ([5.9, 3.0, 4.2, 1.5], 1),
    ([6.7, 3.0, 5.2, 2.3], 2),
    ([6.9, 3.1, 5.1, 2.3], 2),
    ([5.7, 2.8, 4.1, 1.3], 1),
]

OUT = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "iris", "model.json")
)


def load():
    rows = [line.split(",") for line in IRIS_CSV.split()]
    x = [[float(v) for v in r[:4]] for r in rows]
    y = [int(r[4]) for r in rows]
    assert len(x) == 150 and [y.count(c) for c in range(3)] == [50, 50, 50]
    # Column sums of the corrected data set (scikit-learn's load_iris): catches a typo above.
    sums = [round(sum(r[j] for r in x), 1) for j in range(4)]
    assert sums == [876.5, 458.6, 563.7, 179.9], sums
    return x, y


def softmax(z):
    top = max(z)
    e = [math.exp(v - top) for v in z]
    s = sum(e)
    return [v / s for v in e]


def train(x, y):
    n, d, k = len(x), len(x[0]), len(CLASSES)
    mean = [sum(r[j] for r in x) / n for j in range(d)]
    std = [math.sqrt(sum((r[j] - mean[j]) ** 2 for r in x) / n) for j in range(d)]
    xs = [[(r[j] - mean[j]) / std[j] for j in range(d)] for r in x]
    w = [[0.0] * d for _ in range(k)]
    b = [0.0] * k
    for _ in range(EPOCHS):
        gw = [[L2 * w[c][j] for j in range(d)] for c in range(k)]
        gb = [0.0] * k
        for r, t in zip(xs, y):
            p = softmax([sum(w[c][j] * r[j] for j in range(d)) + b[c] for c in range(k)])
            for c in range(k):
                err = (p[c] - (1.0 if c == t else 0.0)) / n
                gb[c] += err
                for j in range(d):
                    gw[c][j] += err * r[j]
        for c in range(k):
            b[c] -= LEARNING_RATE * gb[c]
            for j in range(d):
                w[c][j] -= LEARNING_RATE * gw[c][j]
    # Fold the standardisation into the weights: w.(x - m)/s + b = (w/s).x + (b - w.m/s).
    raw_w = [[w[c][j] / std[j] for j in range(d)] for c in range(k)]
    raw_b = [b[c] - sum(w[c][j] * mean[j] / std[j] for j in range(d)) for c in range(k)]
    return [[round(v, 6) for v in row] for row in raw_w], [round(v, 6) for v in raw_b]


def predict(w, b, r):
    z = [sum(wj * xj for wj, xj in zip(w[c], r)) + b[c] for c in range(len(b))]
    return max(range(len(z)), key=lambda c: z[c])


def main():
    x, y = load()
    w, b = train(x, y)
    correct = sum(predict(w, b, r) == t for r, t in zip(x, y))
    for r, want in CHECKS:
        got = predict(w, b, r)
        assert got == want, f"{r}: predicted {got}, expected {want}"
    model = {
        "format": "gantry-model-server/logistic-regression/v1",
        "description": "Multinomial logistic regression on Fisher's Iris data set; "
        "class = argmax(weights . features + bias). Regenerate with examples/model-server/train.py.",
        "features": FEATURES,
        "classes": CLASSES,
        "weights": w,
        "bias": b,
        "training": {
            "samples": len(x),
            "epochs": EPOCHS,
            "learning_rate": LEARNING_RATE,
            "l2": L2,
            "training_accuracy": round(correct / len(x), 4),
        },
    }
    text = json.dumps(model, indent=2) + "\n"
    # One line per innermost list (a weight row, the class names) keeps the file readable.
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)
    if "--check" in sys.argv[1:]:
        with open(OUT) as f:
            if f.read() != text:
                sys.exit(f"{OUT} is out of date; run {sys.argv[0]}")
        print(f"{OUT} is up to date")
        return
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write(text)
    print(f"wrote {OUT}: training accuracy {correct}/{len(x)}")


if __name__ == "__main__":
    main()
