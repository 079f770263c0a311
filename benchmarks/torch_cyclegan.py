"""A minimal PyTorch CycleGAN of the same architecture, timed against ours (benchmark only, never imported by the
library; ``pip install torch==2.13.0``).

The networks follow the paper and the PyTorch reference's defaults, layer for layer as ``tf_cyclegan.networks``
builds them: the ResNet generator (reflection padding, 7×7 stem, two stride-2 convolutions, residual blocks,
two transposed convolutions, 7×7 output, tanh) and the 70×70 PatchGAN, instance norm without affine parameters,
biases on every convolution, N(0, 0.02) weights. The step is the paper's: LSGAN, cycle λ 10, identity 0.5·λ,
a history pool of 50 for each discriminator, Adam(2e-4, β1 0.5), the discriminator loss halved.
"""

import random

import torch
from torch import nn

PARAMETERS = {"resnet_9blocks": 11_378_179, "resnet_6blocks": 7_837_699, "patchgan": 2_764_737}


def resnet_generator(blocks, channels=3, ngf=64):
    def conv_norm_relu(conv, filters):
        return [conv, nn.InstanceNorm2d(filters), nn.ReLU(True)]

    layers = [nn.ReflectionPad2d(3), *conv_norm_relu(nn.Conv2d(channels, ngf, 7), ngf)]
    for scale in (1, 2):
        layers += conv_norm_relu(nn.Conv2d(ngf * scale, ngf * scale * 2, 3, stride=2, padding=1), ngf * scale * 2)
    layers += [ResidualBlock(ngf * 4) for _ in range(blocks)]
    for scale in (4, 2):
        transposed = nn.ConvTranspose2d(ngf * scale, ngf * scale // 2, 3, stride=2, padding=1, output_padding=1)
        layers += conv_norm_relu(transposed, ngf * scale // 2)
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, channels, 7), nn.Tanh()]
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    def __init__(self, filters):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(filters, filters, 3),
            nn.InstanceNorm2d(filters),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(filters, filters, 3),
            nn.InstanceNorm2d(filters),
        )

    def forward(self, x):
        return x + self.body(x)


def patchgan(channels=3, ndf=64):
    layers = [nn.Conv2d(channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
    for index, stride in ((1, 2), (2, 2), (3, 1)):
        filters_in, filters = ndf * 2 ** (index - 1), ndf * 2**index
        layers += [
            nn.Conv2d(filters_in, filters, 4, stride=stride, padding=1),
            nn.InstanceNorm2d(filters),
            nn.LeakyReLU(0.2, True),
        ]
    layers.append(nn.Conv2d(ndf * 8, 1, 4, stride=1, padding=1))
    return nn.Sequential(*layers)


def initialise(network):
    for module in network.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(module.weight, 0.0, 0.02)
            nn.init.zeros_(module.bias)
    return network


class ImagePool:
    """The reference's history pool: store while filling, then a 50% swap with a random stored image."""

    def __init__(self, size=50):
        self.size, self.images = size, []

    def query(self, images):
        returned = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                returned.append(image)
            elif random.random() > 0.5:
                slot = random.randrange(self.size)
                returned.append(self.images[slot].clone())
                self.images[slot] = image
            else:
                returned.append(image)
        return torch.cat(returned, 0)


class CycleGANStep:
    """One training step of the paper's CycleGAN: generators, then discriminators."""

    def __init__(self, blocks, lambda_cycle=10.0, lambda_identity=0.5, bf16=False):
        torch.manual_seed(0)
        self.generator_ab, self.generator_ba = (initialise(resnet_generator(blocks)) for _ in range(2))
        self.discriminator_a, self.discriminator_b = (initialise(patchgan()) for _ in range(2))
        generators = [*self.generator_ab.parameters(), *self.generator_ba.parameters()]
        discriminators = [*self.discriminator_a.parameters(), *self.discriminator_b.parameters()]
        self.generator_optimizer = torch.optim.Adam(generators, lr=2e-4, betas=(0.5, 0.999))
        self.discriminator_optimizer = torch.optim.Adam(discriminators, lr=2e-4, betas=(0.5, 0.999))
        self.pool_a, self.pool_b = ImagePool(), ImagePool()
        self.lambda_cycle, self.lambda_identity, self.bf16 = lambda_cycle, lambda_identity, bf16

    def _autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16)

    def __call__(self, real_a, real_b):
        mse, l1 = nn.functional.mse_loss, nn.functional.l1_loss
        with self._autocast():
            fake_b, fake_a = self.generator_ab(real_a), self.generator_ba(real_b)
            cycled_a, cycled_b = self.generator_ba(fake_b), self.generator_ab(fake_a)
            same_a, same_b = self.generator_ba(real_a), self.generator_ab(real_b)
            logits_b, logits_a = self.discriminator_b(fake_b).float(), self.discriminator_a(fake_a).float()
            identity = self.lambda_cycle * self.lambda_identity
            generator_total = (
                mse(logits_b, torch.ones_like(logits_b))
                + mse(logits_a, torch.ones_like(logits_a))
                + self.lambda_cycle * (l1(cycled_a.float(), real_a) + l1(cycled_b.float(), real_b))
                + identity * (l1(same_a.float(), real_a) + l1(same_b.float(), real_b))
            )
        self.generator_optimizer.zero_grad(set_to_none=True)
        generator_total.backward()
        self.generator_optimizer.step()
        pooled_a, pooled_b = self.pool_a.query(fake_a.float()), self.pool_b.query(fake_b.float())
        with self._autocast():
            disc_total = 0.0
            for discriminator, real, pooled in (
                (self.discriminator_a, real_a, pooled_a),
                (self.discriminator_b, real_b, pooled_b),
            ):
                real_logits, fake_logits = discriminator(real).float(), discriminator(pooled).float()
                disc_total = disc_total + 0.5 * (
                    mse(real_logits, torch.ones_like(real_logits)) + mse(fake_logits, torch.zeros_like(fake_logits))
                )
        self.discriminator_optimizer.zero_grad(set_to_none=True)
        disc_total.backward()
        self.discriminator_optimizer.step()
        return float(generator_total.detach())


def count_parameters(network):
    return sum(p.numel() for p in network.parameters())
