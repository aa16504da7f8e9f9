"""Keras models. Importing `xdt.models` registers every serialisable class (it imports TensorFlow)."""
