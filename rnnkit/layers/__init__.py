"""Keras-style layers on PyTorch modules, one module per family."""
from .activations import Softmax  # registers itself
from .attention import AdditiveAttention, Attention, MultiHeadAttention  # register themselves
from .base import Layer, clear_session
from .convolutional import Conv1D
from .context_attention import ContextAttention  # registers itself
from .core import Activation, Dense, Dropout, Embedding, Flatten, Input, InputLayer, RepeatVector, TimeDistributed
from .pooling import AveragePooling1D, GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling1D
from .minrnn import MinGRU, MinLSTM  # registers itself
from .recurrent import GRU, LSTM, Bidirectional, SimpleRNN, reset_states
from .cells import RNN, GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells  # register themselves
from .masking import Masking  # registers itself
from .merging import (  # register themselves
    Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract,
    add, average, concatenate, dot, maximum, minimum, multiply, subtract,
)
from .noise import GaussianDropout, GaussianNoise, SpatialDropout1D  # register themselves
from .normalization import BatchNormalization, LayerNormalization  # register themselves
from .reshaping import Permute, Reshape  # register themselves
from .lambda_layer import Lambda  # registers itself
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
    "Bidirectional", "MinGRU", "MinLSTM", "Attention", "AdditiveAttention", "MultiHeadAttention", "ContextAttention",
    "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
    "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate", "dot",
    "Reshape", "Permute", "Masking", "Softmax", "LayerNormalization", "BatchNormalization",
    "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "Lambda",
    "SimpleRNNCell", "LSTMCell", "GRUCell", "StackedRNNCells",
    "clear_session", "serialize_layer", "deserialize_layer", "get_class", "register",
]
