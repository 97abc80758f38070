"""Each exercise's trial (see trials.py): the teacher's code that runs an answer on new inputs made from SEED.

Keyed by the lesson's file name and the exercise number. Inputs are made on the CPU
from a generator seeded with SEED; the global random state is restored afterwards.
A trial asks no more than the exercise's check cell: where the check accepts
several forms (a label as int or tensor, a tuple or a list), the trial turns them
into one before it reports. Each trial draws its sizes so that a plausible mistake
cannot look right by chance (at least two tensors, at least one hidden layer, logits
large enough to overflow...); tests/test_check_trials.py holds such a mistake per exercise.
"""

from __future__ import annotations

from .trials import Trial

TRIALS: dict[str, dict[int, Trial]] = {
    "01_tensors": {
        1: Trial(
            """
g = torch.Generator().manual_seed(SEED)
n, c, h, w = (int(k) for k in torch.randint(2, 6, (4,), generator=g))
scale = torch.rand(1, c, 1, 1, generator=g) * 100 + 0.1
offset = torch.randn(1, c, 1, 1, generator=g) * 50
result = standardize_channels(torch.randn(n, c, h, w, generator=g) * scale + offset)
""",
            rtol=1e-4,
            atol=1e-4,
        ),
        2: Trial(
            """
g = torch.Generator().manual_seed(SEED)
result = []
for case in range(3):  # k >= 2 and n >= 2: with one tensor or one row, stacking along dim 0 would look right
    k, n, m = (int(v) for v in torch.randint(2, 6, (3,), generator=g))
    result.append(cat_dim1([torch.randn(n, m, generator=g) for _ in range(k)]))
"""
        ),
        3: Trial(
            """
import numpy
g = torch.Generator().manual_seed(SEED)
n = int(torch.randint(2, 6, (1,), generator=g))
t = torch.randn(n, 3, generator=g)
a = to_numpy_copy(t)
first = [type(a).__module__ + "." + type(a).__name__, numpy.array(a, copy=True)]  # the array's dtype counts too
t.add_(100)  # an array that shares t's memory changes with it
with_grad = to_numpy_copy(torch.randn(n, generator=g).requires_grad_())
result = [first, numpy.array(a, copy=True), numpy.asarray(with_grad)]
"""
        ),
    },
    "02_datasets_transforms": {
        1: Trial(
            """
class Labelled(torch.utils.data.Dataset):
    def __init__(self, images, targets):
        self.images, self.targets = images, targets

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.images[i], int(self.targets[i])


g = torch.Generator().manual_seed(SEED)
size = int(torch.randint(40, 80, (1,), generator=g))
a, b = (int(k) for k in torch.randperm(10, generator=g)[:2])
targets = torch.randint(0, 10, (size,), generator=g)
targets[int(torch.randint(0, size // 2, (1,), generator=g))] = a  # both classes occur
targets[int(torch.randint(size // 2, size, (1,), generator=g))] = b
pair = TwoClassDataset(Labelled(torch.rand(size, 1, 3, 3, generator=g), targets), a, b)
result = [len(pair), [[pair[i][0], int(pair[i][1])] for i in range(len(pair))]]
"""
        ),
        2: Trial(
            """
import numpy
from PIL import Image
g = torch.Generator().manual_seed(SEED)
count = int(torch.randint(2, 7, (1,), generator=g))
pixels = torch.randint(0, 256, (count, 28, 28), dtype=torch.uint8, generator=g)
labels = torch.randint(0, 10, (count,), generator=g).tolist()
X, y = collate_pil([(Image.fromarray(numpy.asarray(p)), label) for p, label in zip(pixels, labels)])
result = [X, y]
"""
        ),
    },
    "03_build_model": {
        1: Trial(
            """
g = torch.Generator().manual_seed(SEED)
depth = int(torch.randint(1, 4, (1,), generator=g))  # at least one hidden layer, so a missing ReLU shows
sizes = tuple(int(k) for k in torch.randint(3, 40, (depth,), generator=g))
net = build_model(sizes, torch.device("cpu"))
called = []
hooks = [m.register_forward_hook(lambda m, i, o: called.append(m))
         for m in net.modules() if isinstance(m, torch.nn.Linear)]
images = torch.randn(3, 1, 28, 28, generator=g)
try:
    net(images)
finally:
    for hook in hooks:
        hook.remove()
with torch.no_grad():  # new weights, set in the order the layers are called
    for m in called:
        m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.1)
        m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
result = [[[m.in_features, m.out_features] for m in called], net(images)]
""",
            atol=1e-5,
        ),
        2: Trial(
            """
g = torch.Generator().manual_seed(SEED)
net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
with torch.no_grad():
    net[1].weight.copy_(torch.randn(10, 28 * 28, generator=g) * 0.2)
    net[1].bias.copy_(torch.randn(10, generator=g))
shapes = []  # what the model receives: one image as a batch of one, [1, 1, 28, 28]
hook = net.register_forward_pre_hook(lambda m, inputs: shapes.append(list(inputs[0].shape)))
pairs = top2(net, torch.rand(1, 28, 28, generator=g))
hook.remove()
result = [shapes, [[str(name), type(p).__name__, float(p)] for name, p in pairs]]
""",
            atol=1e-5,
        ),
    },
    "04_model_layers": {
        1: Trial(
            """
g = torch.Generator().manual_seed(SEED)
rows, cols = (int(k) for k in torch.randint(2, 8, (2,), generator=g))
scale = float(torch.randint(100, 2000, (1,), generator=g))  # large enough that exp overflows without the shift
z4 = torch.randn(2, cols, 2, 3, generator=g) * 20  # [N, C, H, W]: along dim=1
# divided by scale: float32 steps near 6000 are 5e-4, and correct ways to write it differ by a step or two
z = torch.randn(rows, cols, generator=g) * scale
before = z.clone()
result = [stable_log_softmax(z) / scale, stable_log_softmax(z4), bool(torch.equal(z, before))]  # z is left as it was
""",
            atol=1e-5,
        ),
        2: Trial(
            """
g = torch.Generator().manual_seed(SEED)
fan_in, fan_out = (int(k) for k in torch.randint(2, 12, (2,), generator=g))
layer = MyLinear(fan_in, fan_out)
shapes = sorted([name, list(p.shape)] for name, p in layer.named_parameters())
with torch.no_grad():
    layer.weight.copy_(torch.randn(fan_out, fan_in, generator=g))
    layer.bias.copy_(torch.randn(fan_out, generator=g))
result = [shapes, layer(torch.randn(2, 3, fan_in, generator=g))]
""",
            atol=1e-5,
        ),
    },
    "05_model_parameters": {
        1: Trial(
            """
g = torch.Generator().manual_seed(SEED)
n, m = (int(k) for k in torch.randint(2, 6, (2,), generator=g))
A = torch.randn(m, n, generator=g, dtype=torch.float64)
x = torch.randn(n, generator=g, dtype=torch.float64)
J = jacobian_by_rows(lambda t: torch.tanh(A @ t) * t.sum(), x)
result = [J, x.requires_grad, x.grad is None]
"""
        ),
        # statistics of one random draw: the student's draw and the key's differ, hence the loose tolerance
        2: Trial(
            """
import math
g = torch.Generator().manual_seed(SEED)
# a million weights or more, so the sampling noise of each statistic is far below the tolerance
fan_in, fan_out = int(torch.randint(2000, 3000, (1,), generator=g)), int(torch.randint(500, 800, (1,), generator=g))
a = 0.3 + 0.6 * float(torch.rand(1, generator=g))  # a slope whose gain clearly differs from ReLU's
torch.manual_seed(SEED)
layer = torch.nn.Linear(fan_in, fan_out, dtype=torch.float64)
weight = layer.weight
leaky_he_init_(layer, negative_slope=a)
w, std = layer.weight.detach(), math.sqrt(2 / ((1 + a * a) * fan_in))
beyond = float((w.abs() > 2 * std).double().mean())  # 0.0455 for a normal distribution; the check takes 0.04-0.051
result = [1000 * float(w.std()),  # depends on the drawn slope and fan_in: within 1 %
          float(w.mean()) / std, 10 * beyond, float(layer.bias.detach().abs().max()) * math.sqrt(fan_in),
          layer.weight is weight]  # changed in place, not replaced
""",
            rtol=0.01,
            atol=0.05,
        ),
    },
    "06_training": {
        1: Trial(
            """
g = torch.Generator().manual_seed(SEED)
params = [torch.randn(3, 4, generator=g).requires_grad_(), torch.randn(4, generator=g).requires_grad_()]
for p in params:
    p.grad = torch.zeros_like(p)
# none of them so small that leaving it out would go unnoticed
lr, momentum, weight_decay = (float(v) for v in torch.rand(3, generator=g) * torch.tensor([0.5, 0.8, 0.1])
                              + torch.tensor([0.05, 0.1, 0.01]))
result = []
for decay in (weight_decay, 0.0):  # and without weight decay, where a velocity may share memory with .grad
    velocities = [None] * len(params)
    for step in range(3):
        for p in params:
            p.grad.copy_(torch.randn(p.shape, generator=g))  # in place, as zero_grad and backward do
        sgd_step(params, velocities, lr, momentum, decay)
        result.append([[p.detach().clone() for p in params], [v.clone() for v in velocities]])
""",
            atol=1e-5,
        ),
        # the answer is a statement: run it again on a new confusion matrix
        2: Trial(
            """
g = torch.Generator().manual_seed(SEED)
true = torch.randint(0, 10, (400,), generator=g)
pred = torch.where(torch.rand(400, generator=g) < 0.6, true, torch.randint(0, 10, (400,), generator=g))
run_answer(val_pred=pred, val_true=true, val_confusion=confusion_matrix(pred, true))
result = torch.as_tensor(precision, dtype=torch.float64).flatten()
"""
        ),
    },
    "07_save_load": {
        1: Trial(
            """
def scripted(accuracies, max_epochs, patience):
    net = torch.nn.Linear(2, 1)
    torch.nn.init.zeros_(net.weight), torch.nn.init.zeros_(net.bias)
    calls = {"train": 0, "val": 0}
    loaders = set()

    def fake_train(loader, model, *args, **kwargs):  # after epoch e every parameter is e
        calls["train"] += 1
        loaders.add("trained on " + str(loader))
        with torch.no_grad():
            for p in model.parameters():
                p += 1.0
        return 0.0

    def fake_test(loader, model, *args, **kwargs):
        calls["val"] += 1
        loaders.add("evaluated on " + str(loader))
        return 0.0, accuracies[calls["val"] - 1]

    real = helpers.train_loop, helpers.test_loop
    helpers.train_loop, helpers.test_loop = fake_train, fake_test
    try:
        epoch = fit_early_stopping(net, torch.optim.SGD(net.parameters(), lr=0.1), "train", "val", max_epochs, patience)
    finally:
        helpers.train_loop, helpers.test_loop = real
    return [int(epoch), calls["train"], float(net.weight[0, 0]), float(net.bias[0]), sorted(loaders)]


g = torch.Generator().manual_seed(SEED)
result = []
for case in range(4):
    accuracies = [int(k) / 10 for k in torch.randint(1, 10, (8,), generator=g)]  # above 0, as in the check
    max_epochs, patience = int(torch.randint(3, 9, (1,), generator=g)), int(torch.randint(1, 4, (1,), generator=g))
    result.append(scripted(accuracies, max_epochs, patience))
result.append(scripted([0.5, 0.7, 0.6, 0.6], 4, 2))  # and one where the best epoch is not the last
"""
        ),
        2: Trial(
            """
g = torch.Generator().manual_seed(SEED)
a, b, c, d = (int(k) for k in torch.randint(2, 7, (4,), generator=g))
torch.manual_seed(SEED)
nn_ = torch.nn
target = nn_.Sequential(nn_.Linear(a, b), nn_.ReLU(), nn_.Linear(b, c))
# layer 2 of the source takes more inputs: its weight differs in the second dimension only, its bias fits
source = nn_.Sequential(nn_.Linear(a, b), nn_.ReLU(), nn_.Linear(b + d, c), nn_.Linear(c, 1))
skipped = load_matching(target, source.state_dict())
result = [list(skipped), [[k, v] for k, v in target.state_dict().items()]]
"""
        ),
    },
}
