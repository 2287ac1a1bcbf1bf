"""Export checks compare traced / ONNX outputs with eager ones: one torch thread keeps both deterministic."""

import pytest
import torch


@pytest.fixture
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
