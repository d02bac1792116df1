"""The zoo's model definitions (plain ``torch.nn``, no torchvision).

All take a ``(N, 1, 8, 8)`` digits image and return 10 logits.

- ``mlp``: 64 -> 256 -> 128 -> 10 with ReLU.
- ``alexnet``: AlexNet-style stack of 3x3 convs, ReLU and max-pooling, then
  a flatten and a two-layer Linear head (the flatten turns each of the 64
  channels of a 2x2 map into 4 inputs of the first Linear layer).
- ``resnet``: ResNet-20 layout (He et al. 2016, CIFAR variant): a 3x3 stem,
  three stages of three BasicBlocks with 16, 32, 64 channels (BatchNorm,
  residual adds, 1x1-conv downsample shortcuts where the shape changes),
  global average pooling and a Linear head.  Its 3x3 convs of the last stage
  are 64x576 matrices.
- ``concatnet``: two branches concatenated along channels, one of them a
  depthwise 3x3 conv followed by a 1x1 conv, then BatchNorm, a conv and a
  Linear head.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLP", "AlexNet", "BasicBlock", "ResNet", "ConcatNet", "FACTORIES"]


class MLP(nn.Module):
    """Flatten, then ``64 -> hidden[0] -> hidden[1] -> n_classes`` Linear layers with ReLU.

    Parameters
    ----------
    hidden : pair of int
        Widths of the two hidden layers.
    n_classes : int
        Number of logits.

    Examples
    --------
    >>> m = MLP()
    >>> tuple(m(torch.zeros(2, 1, 8, 8)).shape), tuple(m.fc1.weight.shape)
    ((2, 10), (256, 64))
    """

    def __init__(self, hidden=(256, 128), n_classes: int = 10):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.fc3 = nn.Linear(hidden[1], n_classes)
        self.relu = nn.ReLU()

    def forward(self, x):
        """Logits ``(N, n_classes)`` of a batch of ``(N, 1, 8, 8)`` images."""
        x = self.flatten(x)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)


class AlexNet(nn.Module):
    """AlexNet-style stack: four 3x3 convs with ReLU and two max-pools, then a two-layer Linear head.

    Parameters
    ----------
    n_classes : int
        Number of logits.

    Examples
    --------
    >>> m = AlexNet().eval()
    >>> tuple(m(torch.zeros(2, 1, 8, 8)).shape), tuple(m.classifier[2].weight.shape)
    ((2, 10), (128, 256))
    """

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),                                     # 8x8 -> 4x4
            nn.Conv2d(64, 96, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(96, 64, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),                                     # 4x4 -> 2x2
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.2),
            nn.Linear(64 * 2 * 2, 128), nn.ReLU(inplace=True),
            nn.Dropout(0.2),
            nn.Linear(128, n_classes),
        )

    def forward(self, x):
        """Logits ``(N, n_classes)`` of a batch of ``(N, 1, 8, 8)`` images."""
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    """Two 3x3 convs with BatchNorm; identity or 1x1-conv shortcut.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels.
    stride : int
        Stride of the first conv (and of the shortcut); a 1x1-conv shortcut is used when
        ``stride != 1`` or ``c_in != c_out``.

    Examples
    --------
    >>> b = BasicBlock(16, 32, stride=2).eval()
    >>> tuple(b(torch.zeros(1, 16, 8, 8)).shape), b.downsample is not None
    ((1, 32, 4, 4), True)
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(c_out))
        else:
            self.downsample = None

    def forward(self, x):
        """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet-20 layout (CIFAR variant): a 3x3 stem, stages of :class:`BasicBlock`, pooling, a Linear head.

    Parameters
    ----------
    blocks : sequence of int
        Blocks per stage.
    widths : sequence of int
        Channels per stage (the first block of every stage but the first halves the map).
    n_classes : int
        Number of logits.

    Examples
    --------
    >>> m = ResNet(blocks=(1, 1), widths=(8, 16)).eval()
    >>> tuple(m(torch.zeros(2, 1, 8, 8)).shape), m.n_stages
    ((2, 10), 2)
    """

    def __init__(self, blocks=(3, 3, 3), widths=(16, 32, 64), n_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        c = widths[0]
        for i, (n, w) in enumerate(zip(blocks, widths)):
            layers = []
            for j in range(n):
                layers.append(BasicBlock(c, w, stride=2 if (j == 0 and i > 0) else 1))
                c = w
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.n_stages = len(blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, n_classes)

    def forward(self, x):
        """Logits ``(N, n_classes)`` of a batch of ``(N, 1, 8, 8)`` images."""
        x = self.relu(self.bn1(self.conv1(x)))
        for i in range(self.n_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


class ConcatNet(nn.Module):
    """Concatenation of a plain branch and a depthwise-separable branch.

    Parameters
    ----------
    n_classes : int
        Number of logits.

    Examples
    --------
    >>> m = ConcatNet().eval()
    >>> tuple(m(torch.zeros(2, 1, 8, 8)).shape), m.bn.num_features
    ((2, 10), 80)
    """

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.branch_a = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.ReLU())
        self.dw = nn.Conv2d(32, 32, 3, padding=1, groups=32)     # depthwise
        self.pw = nn.Conv2d(32, 48, 1)
        self.bn = nn.BatchNorm2d(80)
        self.conv = nn.Conv2d(80, 64, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(64 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, n_classes)

    def forward(self, x):
        """Logits ``(N, n_classes)`` of a batch of ``(N, 1, 8, 8)`` images."""
        x = self.stem(x)
        a = self.branch_a(x)
        b = torch.relu(self.pw(torch.relu(self.dw(x))))
        x = torch.relu(self.bn(torch.cat([a, b], dim=1)))
        x = self.pool(torch.relu(self.conv(x)))
        x = x.flatten(1)
        return self.fc2(torch.relu(self.fc1(x)))


#: name -> factory of an untrained model
FACTORIES = {
    "mlp": MLP,
    "alexnet": AlexNet,
    "resnet": ResNet,
    "concatnet": ConcatNet,
}
