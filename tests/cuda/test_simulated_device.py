"""The simulated-CUDA harness itself: kernels run on tensor memory, host copies are caught and undone after."""
from cudasim_helpers import skip_unless_simulator
skip_unless_simulator()
import numpy as np, pytest, torch
from simulated_device import simulated_cuda
from numbarl.torch_api import _arrays

def test_harness():
    x = torch.randint(0, 256, (2, 10, 8, 3), dtype=torch.uint8)
    out = torch.empty(2, 3, 10, 8)
    with simulated_cuda() as sim:
        k = _arrays.kernels_for(x, "pixels")
        k.to_tensor_image(_arrays.as_array(x), out=_arrays.as_array(out), **_arrays.stream_kwargs(x))
        with pytest.raises(AssertionError):
            x.cpu()
        with pytest.raises(AssertionError):
            bool(x.any())
    assert sim.kernel_modules == ["numbarl.core.cuda.pixels"]
    assert len(sim.attempts) == 2
    np.testing.assert_array_equal(out.numpy(), x.permute(0, 3, 1, 2).float().numpy() / 255)
    with simulated_cuda():
        stray = torch.empty(2, 3, 10, 8)  # no device=: lands on meta, and a kernel refuses it
        with pytest.raises(AssertionError, match="default device"):
            _arrays.as_array(stray)
    assert torch.empty(1).device.type == "cpu"
    assert "cpu" not in torch.Tensor.__dict__ and bool(torch.ones(1))
