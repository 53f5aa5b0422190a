"""ERFNet: the published layer layout, names and sizes; shapes; forward/backward; round trip."""

import pytest
import torch
from model_tester import check_forward_backward, check_save_load_round_trip

from lma_perception.models import create_model
from lma_perception.models.erfnet import DownsamplerBlock, NonBottleneck1d, UpsamplerBlock


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_match_the_published_model():
    model = create_model('erfnet')
    assert count(model) == 2_064_256
    assert count(model.encoder) == 1_874_044
    assert count(model.decoder) == 190_212
    # The encoder-only head of the published code (1×1 conv 128 → 20) is optional.
    assert count(create_model('erfnet', encoder_head=True)) == 2_066_836


def test_state_dict_has_the_published_names_and_size():
    state = create_model('erfnet', encoder_head=True).state_dict()
    shapes = {name: tuple(tensor.shape) for name, tensor in state.items()}
    assert shapes['encoder.initial_block.conv.weight'] == (13, 3, 3, 3)
    assert shapes['encoder.layers.14.bn2.running_var'] == (128,)
    assert shapes['encoder.output_conv.weight'] == (20, 128, 1, 1)
    assert shapes['decoder.layers.0.conv.weight'] == (128, 64, 3, 3)
    assert shapes['decoder.output_conv.weight'] == (16, 20, 2, 2)
    assert shapes['decoder.output_conv.bias'] == (20,)
    # The published erfnet_pretrained.pth (8,330,896 bytes) holds 306 tensors of 2,073,428
    # floats: this model without the BatchNorm counters, which that file predates.
    published = {k: v for k, v in state.items() if not k.endswith('num_batches_tracked')}
    assert len(published) == 306
    assert sum(v.numel() for v in published.values()) == 2_073_428


def test_encoder_layout_dilations_and_dropout():
    encoder = create_model('erfnet').encoder
    layers = list(encoder.layers)
    assert isinstance(encoder.initial_block, DownsamplerBlock)
    assert isinstance(layers[0], DownsamplerBlock) and isinstance(layers[6], DownsamplerBlock)
    assert [layer.dropout.p for layer in layers[1:6]] == [0.03] * 5
    assert [layer.conv3x1_2.dilation[0] for layer in layers[7:15]] == [2, 4, 8, 16] * 2
    assert [layer.conv1x3_2.dilation[1] for layer in layers[7:15]] == [2, 4, 8, 16] * 2
    assert [layer.dropout.p for layer in layers[7:15]] == [0.3] * 8
    assert all(isinstance(layer, NonBottleneck1d) for layer in layers[1:6] + layers[7:15])
    bns = [m for m in encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert {bn.eps for bn in bns} == {1e-3}
    decoder = create_model('erfnet').decoder
    assert isinstance(decoder.layers[0], UpsamplerBlock)
    assert isinstance(decoder.layers[3], UpsamplerBlock)


@pytest.mark.parametrize(('height', 'width'), [(64, 128), (72, 136), (8, 8), (120, 40)])
def test_output_is_input_sized_for_odd_feature_maps(height, width):
    torch.manual_seed(0)
    model = create_model('erfnet', num_classes=7).eval()
    with torch.no_grad():
        features = model.encode(torch.rand(1, 3, height, width))
        logits = model(torch.rand(1, 3, height, width))
    assert features.shape == (1, 128, height // 8, width // 8)
    assert logits.shape == (1, 7, height, width)


@pytest.mark.parametrize(('height', 'width'), [(65, 128), (64, 100), (4, 8)])
def test_sizes_not_multiple_of_8_are_refused_with_a_clear_error(height, width):
    model = create_model('erfnet').eval()
    with pytest.raises(ValueError, match=rf'multiples of 8; got \({height}, {width}\)'):
        model(torch.rand(1, 3, height, width))


def test_encoder_head_predicts_at_stride_8():
    model = create_model('erfnet', encoder_head=True).eval()
    with torch.no_grad():
        assert model.encoder.predict(torch.rand(1, 3, 64, 128)).shape == (1, 20, 8, 16)
    with pytest.raises(RuntimeError, match='without its head'):
        create_model('erfnet').encoder.predict(torch.rand(1, 3, 64, 128))


def test_unknown_variant_and_option_are_named():
    with pytest.raises(KeyError, match='erfnet, lma_erfnet'):
        create_model('erfnet_large')
    with pytest.raises(TypeError, match='no option window'):
        create_model('erfnet', window=21)


def test_forward_backward():
    torch.manual_seed(0)
    check_forward_backward(create_model('erfnet'))


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    check_save_load_round_trip(create_model('erfnet', num_classes=5), tmp_path)
