import pytest
import torch

from resnet_repro.models import (
    PAPER_DEPTHS,
    BasicBlock,
    ZeroPadShortcut,
    build_model,
    count_parameters,
    resolve_shortcut,
)

PAPER_PARAMS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962, 1202: 19_421_274}


@pytest.mark.parametrize("depth", PAPER_DEPTHS)
@pytest.mark.parametrize("arch", ["plain", "resnet"])
def test_parameter_counts_match_the_paper(arch, depth):
    assert count_parameters(build_model(arch, depth)) == PAPER_PARAMS[depth]


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
@pytest.mark.parametrize("arch", ["plain", "resnet"])
def test_output_shape(arch, depth):
    model = build_model(arch, depth).eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_depth_1202_output_shape():
    model = build_model("resnet", 1202).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_layer_count_is_6n_plus_2():
    model = build_model("plain", 56)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) + len(linears) == 56
    assert all(c.kernel_size == (3, 3) and c.bias is None for c in convs)


def test_plain_and_resnet_differ_only_by_the_shortcut():
    plain, resnet = build_model("plain", 20), build_model("resnet", 20)
    assert [(n, p.shape) for n, p in plain.named_parameters()] == [(n, p.shape) for n, p in resnet.named_parameters()]
    resnet.load_state_dict(plain.state_dict())
    x = torch.randn(4, 3, 32, 32)
    plain.eval(), resnet.eval()
    assert not torch.allclose(plain(x), resnet(x))  # the shortcut changes the function


def test_option_a_pads_with_zeros_and_subsamples():
    x = torch.randn(2, 16, 8, 8)
    y = ZeroPadShortcut(16)(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 16:]) == 0


def test_option_a_block_adds_no_parameter_and_option_b_does():
    plain = count_parameters(BasicBlock(16, 32, 2, "none"))
    assert count_parameters(BasicBlock(16, 32, 2, "A")) == plain
    assert count_parameters(BasicBlock(16, 32, 2, "B")) == plain + 16 * 32 + 2 * 32  # 1x1 conv + BN


def test_residual_block_adds_its_input():
    block = BasicBlock(16, 16, 1, "A").eval()
    for bn in (block.bn1, block.bn2):  # make the residual branch output exactly zero
        torch.nn.init.zeros_(bn.weight)
    x = torch.randn(2, 16, 8, 8)
    assert torch.allclose(block(x), torch.relu(x))


@pytest.mark.parametrize("depth", [0, 19, 21, 57, -4])
def test_bad_depth_lists_valid_depths(depth):
    with pytest.raises(ValueError, match=r"not 6n\+2.*20, 32, 44, 56, 110, 1202"):
        build_model("resnet", depth)


def test_bad_arch_and_shortcut():
    with pytest.raises(ValueError, match="arch=plain or arch=resnet"):
        resolve_shortcut("vgg")
    with pytest.raises(ValueError, match="cannot take"):
        resolve_shortcut("plain", "A")
    assert resolve_shortcut("resnet", "B") == "B"


def test_a_nets_identity_and_names():
    from resnet_repro.models import Net, net_name

    assert Net.of("resnet", 56) == Net("resnet", 56, "A") and Net.of("plain", 20).shortcut == "none"
    assert [Net.of(*a).cli_name for a in (("plain", 20), ("resnet", 56), ("resnet", 56, "A"), ("resnet", 56, "B"))] == [
        "plain-20",
        "resnet-56",
        "resnet-56",
        "resnet-56-B",
    ]
    assert [Net.of(*a).display_name for a in (("plain", 56), ("resnet", 110), ("resnet", 56, "B"))] == [
        "plain-56",
        "ResNet-110",
        "ResNet-56 (B)",
    ]
    assert Net.of("plain", 20).parameters == Net.of("resnet", 20).parameters == PAPER_PARAMS[20]
    assert Net.of("resnet", 20, "B").parameters > PAPER_PARAMS[20]
    assert net_name("resnet", 21) == "resnet-21"  # names a refused run's folder too; checks nothing
    for bad in (("resnet", 21, "A"), ("plain", 20, "A"), ("resnet", 20, None), ("vgg", 20, "none")):
        with pytest.raises(ValueError):
            Net(*bad)
