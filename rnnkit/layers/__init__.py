"""Keras-style layers on PyTorch modules, one module per family."""
from .attention import Attention  # registers itself
from .base import Layer, clear_session
from .convolutional import Conv1D
from .core import Activation, Dense, Dropout, Embedding, Flatten, Input, InputLayer, RepeatVector, TimeDistributed
from .pooling import AveragePooling1D, GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling1D
from .minrnn import MinGRU, MinLSTM  # registers itself
from .recurrent import GRU, LSTM, RNN, Bidirectional, SimpleRNN, reset_states
from .cells import GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells  # registers itself
from .registry import deserialize_layer, get_class, register, serialize_layer

for _cls in (
    InputLayer, Dense, Embedding, Dropout, Activation, Flatten, RepeatVector, TimeDistributed,
    Conv1D, MaxPooling1D, AveragePooling1D, GlobalMaxPooling1D, GlobalAveragePooling1D,
    SimpleRNN, LSTM, GRU, RNN, Bidirectional,
):
    register(_cls)

# Keras aliases
Conv1d = Conv1D
MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D
GlobalMaxPool1D = GlobalMaxPooling1D
GlobalAvgPool1D = GlobalAveragePooling1D

__all__ = [
    "Layer", "InputLayer", "Input", "Dense", "Embedding", "Dropout", "Activation", "Flatten",
    "RepeatVector", "TimeDistributed", "Conv1D", "MaxPooling1D", "AveragePooling1D",
    "GlobalMaxPooling1D", "GlobalAveragePooling1D", "RNN", "SimpleRNN", "LSTM", "GRU",
    "SimpleRNNCell", "LSTMCell", "GRUCell", "StackedRNNCells",
    "Bidirectional", "MinGRU", "MinLSTM", "Attention", "clear_session", "serialize_layer", "deserialize_layer", "get_class", "register",
]
