"""The LSTM autoencoder lesson's three models, each one `LSTMAutoencoder`.

The lesson trains on one sequence, 0.1, 0.2, ..., 0.9, three ways: an
autoencoder that reconstructs it, one that predicts what follows each step
(0.2, ..., 0.9), and a composite one whose two decoders do both from one code
(Srivastava et al., 2015). Then it keeps the encoder alone, a model that maps
a sequence to a vector of features. In Keras 2 each model was an `LSTM`, a
`RepeatVector(9)`, a second `LSTM` and a `TimeDistributed(Dense)` written by
hand; here each is one layer, and its input length is left open
(`Input((None, 1))`), so the same trained model also reads other lengths.

Each model is trained as in the lesson (100 relu units, Adam, mean squared
error, 300 epochs) and prints its outputs beside the targets and the mean
squared error. The last part feeds the trained composite model's encoder,
standalone, the sequence and a shorter one.

Run it with any backend:

    KERAS_BACKEND=jax python examples/lstm_autoencoder.py [--epochs 300]
"""

import argparse

import keras
import numpy as np

from keras_seqext import LSTMAutoencoder

UNITS = 100
SEED = 1

# The lesson's sequence, shaped (samples, timesteps, features).
SEQUENCE = np.linspace(0.1, 0.9, 9, dtype="float32").reshape(1, 9, 1)
NEXT_STEPS = SEQUENCE[:, 1:]


def train(autoencoder, targets, epochs):
    """Trains `autoencoder` on SEQUENCE -> `targets`; returns the model."""
    inputs = keras.Input((None, 1))
    model = keras.Model(inputs, autoencoder(inputs))
    model.compile(optimizer="adam", loss="mse")
    model.fit(SEQUENCE, targets, epochs=epochs, verbose=0)
    return model


def report(title, outputs, targets):
    """Prints the outputs beside the targets, and their mean squared error."""
    outputs, targets = np.ravel(outputs), np.ravel(targets)
    mse = float(np.mean((outputs - targets) ** 2))
    print(f"\n{title}: MSE {mse:.6f}")
    print("  target " + " ".join(f"{value:5.2f}" for value in targets))
    print("  output " + " ".join(f"{value:5.2f}" for value in outputs))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=300)
    epochs = parser.parse_args().epochs
    keras.utils.set_random_seed(SEED)
    print(f"backend {keras.backend.backend()}, {epochs} epochs each")

    reconstruct = train(
        LSTMAutoencoder(UNITS, activation="relu"), SEQUENCE, epochs
    )
    report("Reconstruct", reconstruct.predict(SEQUENCE, verbose=0), SEQUENCE)

    predict = train(
        LSTMAutoencoder(
            UNITS, mode="predict", prediction_length=8, activation="relu"
        ),
        NEXT_STEPS,
        epochs,
    )
    report("Predict", predict.predict(SEQUENCE, verbose=0), NEXT_STEPS)

    composite_autoencoder = LSTMAutoencoder(
        UNITS, mode="composite", prediction_length=8, activation="relu"
    )
    composite = train(composite_autoencoder, [SEQUENCE, NEXT_STEPS], epochs)
    reconstruction, prediction = composite.predict(SEQUENCE, verbose=0)
    report("Composite, reconstruction", reconstruction, SEQUENCE)
    report("Composite, prediction", prediction, NEXT_STEPS)

    # The encoder shares the trained weights: no copying, no retraining.
    inputs = keras.Input((None, 1))
    encoder = keras.Model(inputs, composite_autoencoder.encoder(inputs))
    for sequence in (SEQUENCE, SEQUENCE[:, :5]):
        features = encoder.predict(sequence, verbose=0)
        print(
            f"\nStandalone encoder, {sequence.shape[1]} steps in: features "
            f"{features.shape}, first five "
            + " ".join(f"{value:.3f}" for value in features[0, :5])
        )


if __name__ == "__main__":
    main()
