"""Every plausible counting convention for Table 1's multiply-adds, enumerated: which of them give all five of the
paper's digits at once (none does; results/teaching/table1.md). About a minute on a 2-core CPU:

    python -m benchmarks.table1_conventions
"""

import collections
import itertools

import torch
import torch.nn.functional as F
from torch import nn

from resnet_repro.models import imagenet_net


def layers(model, size):
    """Per conv/linear: (kind, stage, full MACs, valid-tap MACs, outputs), from one forward pass."""
    names = {m: n for n, m in model.named_modules()}
    rec = []

    def hook(m, inp, out):
        n = names[m]
        kind = "fc" if isinstance(m, nn.Linear) else "stem" if n == "conv1" else "proj" if "shortcut" in n else "conv"
        if isinstance(m, nn.Linear):
            rec.append((kind, n, m.in_features * m.out_features, m.in_features * m.out_features, m.out_features))
            return
        x = inp[0]
        ones = torch.ones(1, 1, *x.shape[2:])
        taps = F.conv2d(ones, torch.ones(1, 1, *m.kernel_size), stride=m.stride, padding=m.padding).sum().item()
        per_tap = m.in_channels * m.out_channels // m.groups
        full = out.shape[2] * out.shape[3] * m.kernel_size[0] * m.kernel_size[1] * per_tap
        rec.append((kind, n, full, int(taps) * per_tap, out[0].numel()))

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, size, size))
    for h in hs:
        h.remove()
    return rec


def net(depth, shortcut, stride_in_3x3):
    m = imagenet_net("plain" if shortcut == "none" else "resnet", depth, shortcut)
    if stride_in_3x3:
        for b in m.blocks:
            if hasattr(b, "conv3") and b.conv1.stride == (2, 2):
                b.conv1.stride, b.conv2.stride = (1, 1), (2, 2)
    return m


PAPER = {18: 1.8, 34: 3.6, 50: 3.8, 101: 7.6, 152: 11.3}
NETS = [(18, "B"), (18, "A"), (34, "B"), (34, "A"), (50, "B"), (101, "B"), (152, "B")]


def count(rec, fc, stem, proj, valid, bias, bn):
    total = 0
    for kind, name, full, val, outs in rec:
        if kind == "fc" and not fc:
            continue
        if kind == "stem" and not stem:
            continue
        if kind == "proj":
            if proj == "none":
                continue
            if proj == "no stage-1" and name.startswith("blocks.0."):
                continue
        total += (val if valid else full) + (outs if bias else 0) + (outs if bn and kind != "fc" else 0)
    return total / 1e9


def main() -> None:
    cache = {}
    for (d, s), size, s3 in itertools.product(NETS, (224, 227), (False, True)):
        if s3 and d < 50:
            continue
        cache[d, s, size, s3] = layers(net(d, s, s3), size)

    rows = []
    for size, s3, fc, stem, proj, valid, bias, bn in itertools.product(
        (224, 227),
        (False, True),
        (True, False),
        (True, False),
        ("all", "no stage-1", "none"),
        (False, True),
        (False, True),
        (False, True),
    ):
        c = {f"{d}{s}": count(cache[d, s, size, s3 and d >= 50], fc, stem, proj, valid, bias, bn) for d, s in NETS}
        match = {d: round(c[f"{d}B"], 1) == PAPER[d] or (d < 50 and round(c[f"{d}A"], 1) == PAPER[d]) for d in PAPER}
        rows.append((sum(match.values()), size, s3, fc, stem, proj, valid, bias, bn, c, match))
    rows.sort(key=lambda r: -r[0])
    print("conventions:", len(rows), "best matches:", rows[0][0], "any 5:", any(r[0] == 5 for r in rows))
    print("conventions matching 50:", sum(r[10][50] for r in rows))
    for r in rows[:12] + [r for r in rows if r[10][50]][:20]:
        print(r[:9], {k: round(v, 3) for k, v in r[9].items()}, [d for d, ok in r[10].items() if not ok])

    print("matches histogram:", collections.Counter(r[0] for r in rows))
    m50 = [r for r in rows if r[10][50]]
    print("conventions giving 50 = 3.8:", len(m50), "their max matches:", max(r[0] for r in m50))
    print("per net, conventions matching:", {d: sum(r[10][d] for r in rows) for d in PAPER})
    base = dict(size=224, s3=False, fc=True, stem=True, proj="all", valid=False, bias=False, bn=False)
    keys = list(base)
    for change in [
        {},
        {"fc": False},
        {"stem": False},
        {"proj": "no stage-1"},
        {"proj": "none"},
        {"s3": True},
        {"valid": True},
        {"size": 227},
        {"bias": True},
        {"bn": True},
        {"proj": "no stage-1", "bias": True},
    ]:
        conv = {**base, **change}
        r = next(r for r in rows if dict(zip(keys, r[1:9])) == conv)
        print(change, {k: round(v, 3) for k, v in r[9].items()}, r[0], [d for d, ok in r[10].items() if not ok])


if __name__ == "__main__":
    main()
