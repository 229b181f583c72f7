"""Optimizers: Keras 3's arguments implemented or refused, updates against real Keras
(tests/fixtures/keras/ops/optimizers.json), learning-rate schedules (schedules.json)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnkit
import rnnkit.keras as keras
from rnnkit.layers import Dense
from rnnkit.training import optimizers, schedules

FIXTURES = Path(__file__).parents[1] / "fixtures" / "keras" / "ops"
OPT = json.loads((FIXTURES / "optimizers.json").read_text())
SCHEDULES = json.loads((FIXTURES / "schedules.json").read_text())


@pytest.mark.parametrize("case", OPT["cases"], ids=[f"{i}-{c['class']}" for i, c in enumerate(OPT["cases"])])
def test_updates_match_keras(case):
    params = [torch.nn.Parameter(torch.tensor(w, dtype=torch.float32)) for w in OPT["w0"]]
    opt = getattr(keras.optimizers, case["class"])(**case["config"])
    opt.build(params)
    for grads in OPT["grads"]:
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g, dtype=torch.float32)
        opt.step(params)
        opt.torch_optimizer.zero_grad(set_to_none=True)
    assert opt.iterations == case["iterations"]
    for p, want in zip(params, case["after"]):
        # Keras puts Adam's / RMSprop's epsilon in a slightly different place than torch does.
        np.testing.assert_allclose(p.detach().numpy(), np.asarray(want), rtol=1e-4, atol=2e-6)


@pytest.mark.parametrize("case", SCHEDULES, ids=[c["class"] for c in SCHEDULES])
def test_schedules_match_keras(case):
    sched = getattr(keras.optimizers.schedules, case["class"])(**case["config"])
    assert sched.get_config() == case["get_config"]
    np.testing.assert_allclose([sched(s) for s in case["steps"]], case["values"], rtol=1e-6, atol=1e-9)
    again = schedules.deserialize(schedules.serialize(sched))
    assert again.get_config() == sched.get_config()


@pytest.mark.parametrize("kwargs, match", [
    ({"bogus": 1}, "not recognized.*bogus"),
    ({"decay": 0.01}, "decay"),
    ({"use_ema": True}, "use_ema"),
    ({"ema_momentum": 0.9}, "ema_momentum"),
    ({"ema_overwrite_frequency": 10}, "ema_overwrite_frequency"),
    ({"loss_scale_factor": 128.0}, "loss_scale_factor"),
    ({"gradient_accumulation_steps": 1}, "gradient_accumulation_steps"),
    ({"clipnorm": 1.0, "clipvalue": 0.5}, "at most one"),
    ({"name": "my_adam"}, "name"),
    ({"learning_rate": lambda: 0.1}, "learning_rate"),
    ({"weight_decay": -1.0}, "weight_decay"),
])
def test_refused_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras.optimizers.Adam(**kwargs)


def test_sgd_momentum_range_and_adamw_decay():
    with pytest.raises(ValueError, match="momentum"):
        keras.optimizers.SGD(momentum=1.5)
    with pytest.raises(ValueError, match="weight_decay"):
        keras.optimizers.AdamW(weight_decay=None)


def test_config_round_trip_with_a_schedule():
    sched = keras.optimizers.schedules.CosineDecay(0.1, 100, warmup_target=0.2, warmup_steps=10)
    opt = keras.optimizers.Adam(learning_rate=sched, weight_decay=0.01, gradient_accumulation_steps=3)
    cfg = opt.get_config()
    assert cfg["learning_rate"]["class_name"] == "CosineDecay"
    again = optimizers.get(json.loads(json.dumps(cfg)))
    assert again.get_config() == cfg and isinstance(again._schedule, schedules.CosineDecay)
    with pytest.raises(TypeError, match="schedule"):
        again.learning_rate = 0.5


def test_fit_with_schedule_accumulation_and_decay_saves_and_loads(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], dtype="float32")
    model = rnnkit.Sequential([Dense(1, input_shape=(3,))])
    sched = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=4, decay_rate=0.5)
    model.compile(optimizer=keras.optimizers.SGD(sched, weight_decay=0.01, gradient_accumulation_steps=2),
                  loss="mse")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)  # 8 batches -> 4 updates
    opt = model.compiled.optimizer
    assert opt.iterations == 4 and opt.learning_rate == pytest.approx(0.05 * 0.5 ** 1)
    model.save(tmp_path / "m.safetensors")
    again = rnnkit.load_model(tmp_path / "m.safetensors")
    assert again.compiled.optimizer.get_config() == opt.get_config()
