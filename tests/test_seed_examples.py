"""Golden tests from the worked examples in the teaching seeds (/work/shared/seeds).

Every expected value below was recomputed by hand (the arithmetic is in the
comments) before being written down; where a slide's number is wrong the test
uses the correct value and the comment names the slip.

Seeds: 000 "CNN Basic" (Hassan), 001 "Convolutional Neural Networks" (Hossain),
002 "CNN Forward Pass" (11-485/785), 003 "Convolution operation" (blog),
004 "Convolution" lecture.
"""

from __future__ import annotations

import numpy as np
import pytest
from reference import naive_conv2d, naive_filter2d, scalar_conv2d

import imgkernel


def f2d(image, kernel, **kw):
    """filter2d with the seeds' defaults: zero border, valid padding unless given."""
    kw.setdefault("padding", "valid")
    kw.setdefault("border", "zero")
    return np.asarray(imgkernel.filter2d(np.asarray(image), np.asarray(kernel), **kw))


def assert_exact(got, expected):
    got = np.asarray(got)
    assert got.shape == np.shape(expected), (got.shape, np.shape(expected))
    np.testing.assert_allclose(got, np.asarray(expected, dtype=np.float64), rtol=0, atol=1e-4)


# --------------------------------------------------------------------------- seed 000

BINARY_5X5 = np.array(
    [
        [1, 1, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 1, 1],
        [0, 0, 1, 1, 0],
        [0, 1, 1, 0, 0],
    ]
)
X_KERNEL = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]])


def test_seed000_binary_image_bias_1_full_map():
    # Kernel X picks the 4 corners and the centre of each 3x3 window; +1 bias.
    # (0,0): rows 0-2 cols 0-2 = 111/011/001: corners 1+1+0+1, centre 1 -> 4, +1 = 5
    #        (slide: 1x1+1x0+1x1+0x0+1x1+1x0+0x1+0x0+1x1 = 4 + 1 = 5, correct)
    # (0,1): 110/111/011: corners 1+0+0+1 = 2, centre 1 -> 3 + 1 = 4
    # (0,2): 100/110/111: corners 1+0+1+1 = 3, centre 1 -> 4 + 1 = 5
    # (1,0): 011/001/001: corners 0+1+0+1 = 2, centre 0 -> 2 + 1 = 3
    # (1,1): 111/011/011: corners 1+1+0+1 = 3, centre 1 -> 4 + 1 = 5
    # (1,2): 110/111/110: corners 1+0+1+0 = 2, centre 1 -> 3 + 1 = 4
    # (2,0): 001/001/011: corners 0+1+0+1 = 2, centre 0 -> 2 + 1 = 3
    # (2,1): 011/011/110: corners 0+1+1+0 = 2, centre 1 -> 3 + 1 = 4
    # (2,2): 111/110/100: corners 1+1+1+0 = 3, centre 1 -> 4 + 1 = 5
    expected = [[5, 4, 5], [3, 5, 4], [3, 4, 5]]
    assert_exact(f2d(BINARY_5X5, X_KERNEL, bias=1), expected)
    assert_exact(naive_filter2d(BINARY_5X5, X_KERNEL, bias=1, padding="valid"), expected)
    # the same through conv2d: one filter, one input channel, bias (1,)
    out = imgkernel.conv2d(
        BINARY_5X5[None].astype(np.float32), X_KERNEL[None, None].astype(np.float32), np.ones(1)
    )
    assert_exact(out, [expected])
    # the uint8 image must not wrap around or saturate
    assert_exact(f2d(BINARY_5X5.astype(np.uint8), X_KERNEL, bias=1), expected)


# Seed 000's RGB example. Red and blue are printed (first rows are the zero
# padding); the green grid is missing from the seed text, so its visible
# values come from the original figure the slide reproduces (Saha 2018,
# "A Comprehensive Guide to CNNs"): 167 166 / 164 165 in the top-left.
RED = [
    [156, 155, 156, 158, 158],
    [153, 154, 157, 159, 159],
    [149, 151, 155, 158, 159],
    [146, 146, 149, 153, 158],
    [145, 143, 143, 148, 158],
]
GREEN = [
    [167, 166, 167, 169, 169],
    [164, 165, 168, 170, 170],
    [160, 162, 166, 169, 170],
    [156, 156, 159, 163, 168],
    [155, 153, 153, 158, 168],
]
BLUE = [
    [163, 162, 163, 165, 165],
    [160, 161, 164, 166, 166],
    [156, 158, 162, 165, 166],
    [155, 155, 158, 162, 167],
    [154, 152, 152, 157, 167],
]
K_RED = [[-1, -1, 1], [0, 1, -1], [0, 1, 1]]
K_GREEN = [[1, 0, 0], [1, -1, -1], [1, 0, -1]]
K_BLUE = [[0, 1, 1], [0, 1, 0], [1, -1, 1]]


def test_seed000_rgb_three_channel_filter():
    x = np.array([RED, GREEN, BLUE], dtype=np.float32)  # (C=3, 5, 5)
    w = np.array([[K_RED, K_GREEN, K_BLUE]], dtype=np.float32)  # (K=1, C=3, 3, 3)
    # top-left window of the zero-padded planes is [[0,0,0],[0,a,b],[0,c,d]]:
    # red:   0*-1+0*-1+0*1 + 0*0+156*1+155*-1 + 0*0+153*1+154*1 = 1 + 307 = 308
    # green: 0 + (0*1 + 167*-1 + 166*-1) + (0*1 + 164*0 + 165*-1) = -333 - 165 = -498
    # blue:  0 + (0*0 + 163*1 + 162*0) + (0*1 + 160*-1 + 161*1) = 163 + 1 = 164
    # sum + bias: 308 - 498 + 164 + 1 = -25   (slide: -25, correct)
    for c, partial in enumerate((308, -498, 164)):
        one = imgkernel.conv2d(x[c : c + 1], w[:, c : c + 1], padding=1)
        assert one[0, 0, 0] == pytest.approx(partial)
    out = imgkernel.conv2d(x, w, np.array([1.0]), padding=1)
    assert out.shape == (1, 5, 5)
    assert out[0, 0, 0] == pytest.approx(-25)
    # the rest of the map (not printed in the seed) against the reference
    ref = naive_conv2d(x, w, [1.0], pads=(1, 1, 1, 1))
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-3)
    # stride 2 (the slide's title is "stride"): windows at rows/cols 0, 2, 4
    out2 = imgkernel.conv2d(x, w, np.array([1.0]), stride=2, padding=1)
    assert out2.shape == (1, 3, 3)
    np.testing.assert_allclose(out2, ref[:, ::2, ::2], rtol=1e-6, atol=1e-3)


# Seed 000 "What is padding?": the 7x7 zero-padded input (first 5 interior
# columns; the seed's grid has an extra column whose first-row value is
# garbled, it does not enter the printed outputs) and the kernel given by the
# subscripts 2 0 1 / 1 0 0 / 0 1 1.
PAD_INPUT = np.array(
    [
        [2, 2, 3, 3, 3],
        [0, 1, 3, 0, 3],
        [2, 3, 0, 1, 3],
        [3, 3, 2, 1, 2],
        [3, 3, 0, 2, 3],
    ]
)
PAD_KERNEL = np.array([[2, 0, 1], [1, 0, 0], [0, 1, 1]])


def test_seed000_padding_1_top_left_outputs():
    # padded rows: r0 0000000 / r1 0223330 / r2 0013030 / r3 0230130 / r4 0332120 ...
    # (0,0): r0 000 -> 0; r1 0,2,2 -> 0*1+2*0+2*0 = 0; r2 0,0,1 -> 0+0+1*1 = 1      => 1
    # (0,1): r0 -> 0; r1 2,2,3 -> 2*1 = 2; r2 0,1,3 -> 1*1+3*1 = 4                   => 6
    # (0,2): r0 -> 0; r1 2,3,3 -> 2; r2 1,3,0 -> 3*1+0*1 = 3                         => 5
    # (1,0): r1 0,2,2 -> 0*2+2*1 = 2; r2 0,0,1 -> 0; r3 0,2,3 -> 2*1+3*1 = 5          => 7
    # (1,1): r1 2,2,3 -> 4+3 = 7; r2 0,1,3 -> 0; r3 2,3,0 -> 3*1+0 = 3               => 10
    # (1,2): r1 2,3,3 -> 4+3 = 7; r2 1,3,0 -> 1; r3 3,0,1 -> 0+1 = 1                 => 9
    # (2,0): r2 0,0,1 -> 1; r3 0,2,3 -> 0; r4 0,3,3 -> 3+3 = 6                        => 7
    # (2,1): r2 0,1,3 -> 3; r3 2,3,0 -> 2; r4 3,3,2 -> 3+2 = 5                        => 10
    # (2,2): r2 1,3,0 -> 2; r3 3,0,1 -> 3; r4 3,2,1 -> 2+1 = 3                        => 8
    # slide: 1 6 5 / 7 10 9 / 7 10 8 -- correct.
    out = f2d(PAD_INPUT, PAD_KERNEL, padding=1)
    assert out.shape == (5, 5)  # (5 + 2*1 - 3)/1 + 1 = 5
    assert_exact(out[:3, :3], [[1, 6, 5], [7, 10, 9], [7, 10, 8]])
    # "same" for a 3x3 kernel at stride 1 is exactly padding 1
    assert_exact(f2d(PAD_INPUT, PAD_KERNEL, padding="same"), out)
    np.testing.assert_allclose(
        out, naive_filter2d(PAD_INPUT, PAD_KERNEL, padding=1, border="zero"), atol=1e-4
    )


# --------------------------------------------------------------------------- seed 001

FD_IMAGE = np.array(
    [
        [0, 0, 0, 0, 0, 0, 0],
        [0, 1, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 1, 0, 0, 0],
        [0, 1, 0, 0, 0, 1, 0],
        [0, 0, 1, 1, 1, 0, 0],
        [0, 0, 0, 0, 0, 0, 0],
    ]
)
FEATURE_DETECTOR = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 1]])


def test_seed001_feature_detector_map():
    # The detector's ones are at (0,2), (1,0), (2,1), (2,2) of each window, so
    # out[i,j] = I[i,j+2] + I[i+1,j] + I[i+2,j+1] + I[i+2,j+2].
    # Ones of the image: (1,1) (1,5) (3,3) (4,1) (4,5) (5,2) (5,3) (5,4).
    # row 0: (0,1) = I[0,3]+I[1,1]+I[2,2]+I[2,3] = 0+1+0+0 = 1; others 0 -> 0 1 0 0 0
    # row 1: (1,1) = I[1,3]+I[2,1]+I[3,2]+I[3,3] = 0+0+0+1 = 1
    #        (1,2) = I[1,4]+I[2,2]+I[3,3]+I[3,4] = 0+0+1+0 = 1
    #        (1,3) = I[1,5]+I[2,3]+I[3,4]+I[3,5] = 1 -> 0 1 1 1 0
    # row 2: (2,0) = I[2,2]+I[3,0]+I[4,1]+I[4,2] = 1
    #        (2,1) = I[2,3]+I[3,1]+I[4,2]+I[4,3] = 0
    #        (2,2) = I[2,4]+I[3,2]+I[4,3]+I[4,4] = 0+0+0+0 = 0   <- slide says 1 (slip)
    #        (2,3) = I[2,5]+I[3,3]+I[4,4]+I[4,5] = 0+1+0+1 = 2
    #        (2,4) = I[2,6]+I[3,4]+I[4,5]+I[4,6] = 1 -> 1 0 0 2 1
    # row 3: (3,0) = I[3,2]+I[4,0]+I[5,1]+I[5,2] = 1
    #        (3,1) = I[3,3]+I[4,1]+I[5,2]+I[5,3] = 4
    #        (3,2) = I[3,4]+I[4,2]+I[5,3]+I[5,4] = 2
    #        (3,3) = I[3,5]+I[4,3]+I[5,4]+I[5,5] = 1
    #        (3,4) = I[3,6]+I[4,4]+I[5,5]+I[5,6] = 0 -> 1 4 2 1 0
    # row 4: (4,0) = I[4,2]+I[5,0]+I[6,1]+I[6,2] = 0
    #        (4,1) = I[4,3]+I[5,1]+I[6,2]+I[6,3] = 0
    #        (4,2) = I[4,4]+I[5,2]+... = 1;  (4,3) = I[4,5]+I[5,3] = 2;  (4,4) = I[5,4] = 1
    #        -> 0 0 1 2 1
    # Slide's map: 0 1 0 0 0 / 0 1 1 1 0 / 1 0 1 2 1 / 1 4 2 1 0 / 0 0 1 2 1.
    # SLIP: row 2, column 2 is 0, not 1.
    expected = [
        [0, 1, 0, 0, 0],
        [0, 1, 1, 1, 0],
        [1, 0, 0, 2, 1],
        [1, 4, 2, 1, 0],
        [0, 0, 1, 2, 1],
    ]
    assert_exact(f2d(FD_IMAGE, FEATURE_DETECTOR), expected)
    assert_exact(scalar_conv2d(FD_IMAGE[None], FEATURE_DETECTOR[None, None])[0], expected)
    assert_exact(f2d(FD_IMAGE.astype(np.uint8), FEATURE_DETECTOR), expected)


def test_seed001_max_pooling_of_feature_map():
    # 2x2 max pool, stride 2 over the (corrected) 5x5 feature map, partial
    # windows at the right/bottom edge kept (ceil mode; floor mode gives 2x2):
    # rows 0-1: max(0,1,0,1)=1, max(0,0,1,1)=1, max(0,0)=0
    # rows 2-3: max(1,0,1,4)=4, max(0,2,2,1)=2, max(1,0)=1
    # row 4:    max(0,0)=0,     max(1,2)=2,     max(1)=1
    # slide: 1 1 0 / 4 2 1 / 0 2 1 (also right with the slide's own map, since
    # the slipped cell's window holds a 2). And 256x256x64 -> 128x128x64.
    feature_map = f2d(FD_IMAGE, FEATURE_DETECTOR)
    assert_exact(
        imgkernel.pool2d(feature_map, 2, ceil_mode=True), [[1, 1, 0], [4, 2, 1], [0, 2, 1]]
    )
    assert_exact(imgkernel.pool2d(feature_map, 2), [[1, 1], [4, 2]])
    slide_map = feature_map.copy()
    slide_map[2, 2] = 1  # the slide's slipped cell changes nothing here
    assert_exact(imgkernel.pool2d(slide_map, 2, ceil_mode=True), [[1, 1, 0], [4, 2, 1], [0, 2, 1]])
    maps = np.zeros((256, 256, 64), np.float32)
    assert imgkernel.pool2d(maps, 2).shape == (128, 128, 64)


def test_seed001_question_256x256x3_64_filters():
    # 64 filters of 3x3x3 (+1 bias each): 64 * (3*3*3 + 1) = 64 * 28 = 1,792 parameters.
    # Output: the 3x3 window fits 256 - 3 + 1 = 254 times per axis -> 254 x 254 x 64.
    weight = np.zeros((64, 3, 3, 3), dtype=np.float32)
    bias = np.zeros(64, dtype=np.float32)
    assert weight.size + bias.size == 64 * (3 * 3 * 3 + 1) == 1792
    out = imgkernel.conv2d(np.zeros((3, 256, 256), dtype=np.float32), weight, bias, stride=1)
    assert out.shape == (64, 254, 254)  # channels-first: 254 x 254 x 64
    assert not np.any(out)
    # The slide's side remarks: 256*256*3 = 196,608 features and 196,609
    # parameters for one neuron (one bullet says "196,908 + 1 = 196,909": a
    # typo, the next paragraph has 196,609); 128*128*3 + 1 = 49,153; two such
    # neurons: 2 * 49,153 = 98,306.
    assert 256 * 256 * 3 == 196_608 and 128 * 128 * 3 + 1 == 49_153
    # with "same" zero padding the spatial size is kept: 256 x 256 x 64
    same = imgkernel.conv2d(np.zeros((3, 256, 256), dtype=np.float32), weight, bias, padding="same")
    assert same.shape == (64, 256, 256)


def test_seed001_zero_padding_of_3x3_image():
    # "padding a 3x3 image with a border of size 1": a 1x1 identity kernel with
    # padding 1 returns the padded image itself, (3 + 2 - 1)/1 + 1 = 5.
    image = np.array([[12, 34, 15], [32, 63, 1], [8, 77, 98]], dtype=np.uint8)
    padded = [
        [0, 0, 0, 0, 0],
        [0, 12, 34, 15, 0],
        [0, 32, 63, 1, 0],
        [0, 8, 77, 98, 0],
        [0, 0, 0, 0, 0],
    ]
    assert_exact(f2d(image, [[1]], padding=1), padded)
    # and a 3x3 filter with padding 1 starts centred on pixel 1: output 3x3,
    # the centre-tap kernel gives the image back.
    centre = np.zeros((3, 3))
    centre[1, 1] = 1
    assert_exact(f2d(image, centre, padding=1), image)


# --------------------------------------------------------------------------- seed 002

A_002 = np.array(
    [
        [0, 2, -3, 2, -3],
        [-2, -2, -2, -1, -2],
        [-3, -3, 2, -2, 1],
        [-3, -2, 1, -3, 1],
        [0, -1, 0, 2, -3],
    ]
)
W_002 = np.array([[-1, 0, -2], [1, 1, -1], [-1, -1, 0]])


def test_seed002_stride_1_and_2():
    # Z[i,j] = -A[i,j] - 2A[i,j+2] + A[i+1,j] + A[i+1,j+1] - A[i+1,j+2]
    #          - A[i+2,j] - A[i+2,j+1] - 1
    # (0,0): -0 -2(-3) + (-2) + (-2) - (-2) - (-3) - (-3) - 1 = 6-2-2+2+3+3-1 = 9
    # (0,1): -2 -2(2) + (-2) + (-2) - (-1) - (-3) - 2 - 1 = -2-4-2-2+1+3-2-1 = -9
    # (0,2): 3 -2(-3) + (-2) + (-1) - (-2) - 2 - (-2) - 1 = 3+6-2-1+2-2+2-1 = 7
    # (1,0): 2 -2(-2) + (-3) + (-3) - 2 - (-3) - (-2) - 1 = 2+4-3-3-2+3+2-1 = 2
    # (1,1): 2 -2(-1) + (-3) + 2 - (-2) - (-2) - 1 - 1 = 2+2-3+2+2+2-1-1 = 5
    # (1,2): 2 -2(-2) + 2 + (-2) - 1 - 1 - (-3) - 1 = 2+4+2-2-1-1+3-1 = 6
    # (2,0): 3 -2(2) + (-3) + (-2) - 1 - 0 - (-1) - 1 = 3-4-3-2-1+1-1 = -7
    # (2,1): 3 -2(-2) + (-2) + 1 - (-3) - (-1) - 0 - 1 = 3+4-2+1+3+1-1 = 9
    # (2,2): -2 -2(1) + 1 + (-3) - 1 - 0 - 2 - 1 = -2-2+1-3-1-2-1 = -10
    # slide: 9 -9 7 / 2 5 6 / -7 9 -10 -- correct (and it is a correlation:
    # with the kernel flipped the top-left would be 2, not 9).
    stride1 = [[9, -9, 7], [2, 5, 6], [-7, 9, -10]]
    assert_exact(f2d(A_002, W_002, bias=-1), stride1)
    # Stride 2 keeps rows/cols 0 and 2 ("drop intermediates"): 9 7 / -7 -10,
    # (5 - 3)/2 + 1 = 2. Slide: correct.
    assert_exact(f2d(A_002, W_002, bias=-1, stride=2), [[9, 7], [-7, -10]])
    out = imgkernel.conv2d(
        A_002[None, None].astype(np.float32),
        W_002[None, None].astype(np.float32),
        np.array([-1.0]),
        stride=2,
    )
    assert out.shape == (1, 1, 2, 2)
    assert_exact(out[0, 0], [[9, 7], [-7, -10]])
    assert f2d(A_002, W_002, bias=-1, convolve=True)[0, 0] == pytest.approx(2)


A_4X4 = np.arange(1, 17).reshape(4, 4)  # A_{r,c} = 4(r-1) + c
W_2X2 = np.array([[1, 10], [100, 1000]])  # each output's digits name the A's it used


def test_seed002_symbolic_4x4_with_2x2_kernel():
    # z11 = A11*W11 + A12*W12 + A21*W21 + A22*W22 + B = 1 + 20 + 500 + 6000 + B
    # z12 = A12 W11 + A13 W12 + A22 W21 + A23 W22 = 2 + 30 + 600 + 7000
    # z13 = A13 W11 + A14 W12 + A23 W21 + A24 W22 = 3 + 40 + 700 + 8000
    # general z_ij = A_ij + 10 A_i,j+1 + 100 A_i+1,j + 1000 A_i+1,j+1
    b = 0.5
    out = f2d(A_4X4, W_2X2, bias=b)
    assert out.shape == (3, 3)  # (4 - 2 + 0)/1 + 1 = 3
    assert out[0, 0] == pytest.approx(1 + 20 + 500 + 6000 + b)
    assert out[0, 1] == pytest.approx(2 + 30 + 600 + 7000 + b)
    assert out[0, 2] == pytest.approx(3 + 40 + 700 + 8000 + b)
    expected = [
        [
            A_4X4[i, j]
            + 10 * A_4X4[i, j + 1]
            + 100 * A_4X4[i + 1, j]
            + 1000 * A_4X4[i + 1, j + 1]
            + b
            for j in range(3)
        ]
        for i in range(3)
    ]
    assert_exact(out, expected)


def test_seed002_padding_1_gives_5x5_not_4x4():
    # Slide pads the 4x4 A with one ring of zeros (6x6) and draws a 4x4 Z.
    # SLIP: (4 - 2 + 2*1)/1 + 1 = 5, so Z is 5x5. Its corners: z11 = A11*W22
    # (the "A11 meets W22" remark) = 1*1000, z55 = A44*W11 = 16*1.
    out = f2d(A_4X4, W_2X2, padding=1)
    assert out.shape == (5, 5)
    assert out[0, 0] == pytest.approx(1000)
    assert out[4, 4] == pytest.approx(16)
    assert out[0, 4] == pytest.approx(4 * 100)  # A14 * W21
    assert out[4, 0] == pytest.approx(13 * 10)  # A41 * W12
    # A 4x4 output needs a total pad of 1 per axis: "same" puts it at the end
    same = f2d(A_4X4, W_2X2, padding="same")
    assert same.shape == (4, 4)
    assert_exact(same, out[1:, 1:])


def test_seed002_stride_2_symbolic():
    # Z11 = A11 W11 + A12 W12 + A21 W21 + A22 W22 ; Z12 = A13 W11 + A14 W12 + A23 W21 + A24 W22
    # (4 - 2)/2 + 1 = 2 -> 2x2
    # Z11 = 1*1 + 2*10 + 5*100 + 6*1000 = 6521 ; Z12 = 3 + 40 + 700 + 8000 = 8743
    # Z21 = 9 + 100 + 1300 + 14000 = 15409 ; Z22 = 11 + 120 + 1500 + 16000 = 17631
    out = f2d(A_4X4, W_2X2, stride=2)
    assert_exact(out, [[6521, 8743], [15409, 17631]])


def test_seed002_output_width_formula_floors():
    # Output width = floor((W_in - W_k + 2P) / S) + 1 (the slide's bracket is a floor)
    for w_in, k, p, s in [
        (4, 2, 0, 1),
        (4, 2, 1, 1),
        (5, 3, 0, 2),
        (6, 3, 0, 2),
        (7, 3, 1, 3),
        (10, 4, 2, 3),
    ]:
        out = f2d(np.ones((3, w_in)), np.ones((1, k)), padding=(0, p), stride=(1, s))
        assert out.shape[1] == (w_in - k + 2 * p) // s + 1


# --------------------------------------------------------------------------- seed 003


def test_seed003_output_size_formula_vs_floor():
    # O = (I + 2P - K)/S + 1. Figure 3: I=5, P=1, K=3, S=1 -> (5+2-3)/1+1 = 5.
    assert f2d(np.ones((5, 5)), np.ones((3, 3)), padding=1).shape == (5, 5)
    # Without a floor the formula is not an integer when S does not divide:
    # I=6, K=3, P=0, S=2 -> 3/2 + 1 = 2.5; the windows that fit start at 0 and 2
    # (a start at 4 would need cells 4..6), so the real size is floor(1.5) + 1 = 2.
    assert (6 + 0 - 3) / 2 + 1 == 2.5
    out = f2d(np.arange(36.0).reshape(6, 6), np.ones((3, 3)), stride=2)
    assert out.shape == (2, 2)
    # rows 0..2, cols 2..4 of arange(36).reshape(6,6): 2+3+4 + 8+9+10 + 14+15+16 = 81
    assert out[0, 1] == pytest.approx(81)


# --------------------------------------------------------------------------- seed 004


def test_seed004_symbolic_3x4_with_2x2_kernel():
    # Input a b c d / e f g h / i j k l, kernel w x / y z:
    # output aw+bx+ey+fz  bw+cx+fy+gz  cw+dx+gy+hz
    #        ew+fx+iy+jz  fw+gx+jy+kz  gw+hx+ky+lz      (2x3 from 3x4)
    a, b, c, d, e, f, g, h, i, j, k, l = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)  # noqa: E741
    w, x, y, z = (1, 10, 100, 1000)
    image = np.array([[a, b, c, d], [e, f, g, h], [i, j, k, l]])
    expected = [
        [
            a * w + b * x + e * y + f * z,
            b * w + c * x + f * y + g * z,
            c * w + d * x + g * y + h * z,
        ],
        [
            e * w + f * x + i * y + j * z,
            f * w + g * x + j * y + k * z,
            g * w + h * x + k * y + l * z,
        ],
    ]
    # e.g. aw+bx+ey+fz = 2 + 30 + 1100 + 13000 = 14132
    assert expected[0][0] == 14132
    assert_exact(f2d(image, [[w, x], [y, z]]), expected)
    # S_ij = sum_a sum_b I[i+a, j+b] K[a, b]: no flip, whatever the slide calls it.
    # "To get a feature map of the same size, add one extra row and one extra
    # column": total pad 1 per axis, at the bottom/right (ONNX SAME_UPPER), so
    # the last column is c' = dw + 0x + hy + 0z and the last row i w + j x.
    same = f2d(image, [[w, x], [y, z]], padding="same")
    assert same.shape == (3, 4)
    assert_exact(same[:2, :3], expected)
    assert same[0, 3] == pytest.approx(d * w + h * y)
    assert same[2, 0] == pytest.approx(i * w + j * x)
    assert same[2, 3] == pytest.approx(l * w)


def test_seed004_valid_and_same_sizes():
    # 5x5 input, 3x3 kernel: valid -> 3x3 (W2 = W1 - F + 1 = 3); same -> 5x5
    # (W2 = W1 - F + 2P + 1 = 5 - 3 + 2 + 1 = 5 with P = 1).
    img = np.arange(25.0).reshape(5, 5)
    assert f2d(img, np.ones((3, 3)), padding="valid").shape == (3, 3)
    assert f2d(img, np.ones((3, 3)), padding="same").shape == (5, 5)
    # W2 = (W1 - F + 2P)/S + 1, floored: 7x7, F=3, P=1, S=2 -> 6/2 + 1 = 4 (the
    # 4 dots of the stride slide, 7 wide input plus its zero ring = 9 columns)
    assert f2d(np.ones((7, 7)), np.ones((3, 3)), padding=1, stride=2).shape == (4, 4)
    # 5x5 kernel on 7x7: 7 - 5 + 1 = 3
    assert f2d(np.ones((7, 7)), np.ones((5, 5))).shape == (3, 3)


def test_seed004_dilated_kernel():
    # Slide: "Standard 3x3 kernel (all ones), dilated 3x3 kernel with dilation
    # rate 2" drawn as the 3x3 [[1,0,1],[0,0,0],[1,0,1]].
    # SLIP: a 3x3 kernel at dilation 2 spans 2*(3-1)+1 = 5 cells per axis; the
    # drawing is a 2x2 all-ones kernel at dilation 2.
    rng = np.random.default_rng(4)
    img = rng.integers(0, 10, size=(9, 9)).astype(np.float32)
    drawn = np.array([[1, 0, 1], [0, 0, 0], [1, 0, 1]])
    assert_exact(f2d(img, np.ones((2, 2)), dilation=2), f2d(img, drawn))
    dilated3 = np.zeros((5, 5))
    dilated3[::2, ::2] = 1
    got = f2d(img, np.ones((3, 3)), dilation=2)
    assert got.shape == (5, 5)  # 9 - 5 + 1
    assert_exact(got, f2d(img, dilated3))
    # one value by hand: out[0,0] = sum of img at rows/cols {0,2,4}
    assert got[0, 0] == pytest.approx(img[::2, ::2][:3, :3].sum())


def test_seed004_sparse_connectivity_4x4():
    # 4x4 image as the vector 1..16: h11 sees pixels 1,2,5,6 and h12 sees
    # 3,4,7,8 -> a 2x2 kernel at stride 2. With a ones kernel:
    # h11 = 1+2+5+6 = 14, h12 = 3+4+7+8 = 22, h21 = 9+10+13+14 = 46, h22 = 11+12+15+16 = 54
    assert_exact(f2d(A_4X4, np.ones((2, 2)), stride=2), [[14, 22], [46, 54]])


def test_seed004_named_kernels_on_flat_and_ramp_images():
    flat = np.full((6, 7), 50, dtype=np.uint8)
    # Gaussian 3x3 (1 2 1 / 2 4 2 / 1 2 1)/16 and 5x5 binomial (outer of 1 4 6 4 1)/256:
    # sums 16 and 256, so both keep a flat image; so do the 3x3 and 5x5 means
    # (which the slide labels "A 3x3 Gaussian Kernel" -- a label slip: they are box filters).
    g3 = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16
    b5 = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])
    assert b5.sum() == 256 and b5[2, 2] == 36 and b5[1, 2] == 24
    for k in (g3, b5 / 256, np.full((3, 3), 1 / 9), np.full((5, 5), 1 / 25)):
        assert_exact(f2d(flat, k, padding="same", border="edge"), np.full((6, 7), 50))
    # zero-sum kernels (Laplacian 0 -1 0/-1 4 -1/0 -1 0, edge 1 1 1/1 -8 1/1 1 1) -> 0
    lap = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]])
    edge8 = np.array([[1, 1, 1], [1, -8, 1], [1, 1, 1]])
    for k in (lap, edge8):
        assert_exact(f2d(flat, k, padding="same", border="reflect"), np.zeros((6, 7)))
    # unsharp mask 0 -1 0/-1 5 -1/0 -1 0 = identity + Laplacian
    rng = np.random.default_rng(44)
    img = rng.integers(0, 256, size=(6, 7)).astype(np.uint8)
    sharp = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]])
    np.testing.assert_allclose(
        f2d(img, sharp, padding="same", border="reflect"),
        img + f2d(img, lap, padding="same", border="reflect"),
        atol=1e-3,
    )
    # Sobel "horizontal" -1 0 1/-2 0 2/-1 0 1 on the ramp I[r,c] = c:
    # (c+1 - (c-1)) * (1 + 2 + 1) = 8 everywhere in the valid region;
    # as a true convolution (kernel flipped) it is -8.
    ramp = np.tile(np.arange(8.0), (5, 1))
    sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    assert_exact(f2d(ramp, sobel_x), np.full((3, 6), 8))
    assert_exact(f2d(ramp, sobel_x, convolve=True), np.full((3, 6), -8))
    # "vertical" 1 2 1/0 0 0/-1 -2 -1 on I[r,c] = 3r: (3r - 3(r+2)) * 4 = -24
    assert_exact(
        f2d(3 * ramp.T, np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]])), np.full((6, 3), -24)
    )
