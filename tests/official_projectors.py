"""Test-only port of the two published projectors, kept as close to the originals as possible.

Sources (read through the public code index, ported with minimal changes):

* PointCLIP (V1): https://github.com/ZrrSkywalker/PointCLIP
  commit 02c91ee10a31b551f665e28ba5e4c88dd9533e3d,
  `trainers/mv_utils_zs.py` (RESOLUTION = 128, TRANS = -1.6, 6 views),
  `trainers/mv_utils_fs.py` (RESOLUTION = 224, TRANS = -1.4, 10 views),
  `trainers/zeroshot.py::PointCLIP_ZS.mv_proj` and `trainers/fewshot.py::PointCLIP_Model.mv_proj`.
* PointCLIP V2: https://github.com/yangyangyang127/PointCLIP_V2
  commit 04779d35ca9b70616794726747175f78c96b7f6b,
  `zeroshot_cls/trainers/mv_utils_zs.py` (Realistic_Projection, Grid2Image, points2grid),
  `zeroshot_cls/trainers/zeroshot.py::PointCLIPV2_ZS.real_proj`.

Changes from the originals, none of which touches the arithmetic or its order:
* `.cuda()` removed: tensors live on the device of the input points (matrices are built on
  the CPU, as the originals build them from numpy, then moved).
* The two V1 files differ only in RESOLUTION / TRANS / view list: they are one class here,
  `PCViews(fewshot=False|True)`.
* `torch_scatter.scatter(..., out=grid, reduce="max")` (not installed here) is replaced by
  the built-in `Tensor.scatter_reduce(..., "amax", include_self=True)`, which is the same
  operation (torch_scatter keeps the values already in `out`).
* `torch.nn.functional.upsample` (deprecated) -> `interpolate` (same function).
* Unused helpers (batched_index_select, point_fea_img_fea, ...) and the `distance` tensor
  that `distribute` computes but never uses are dropped.
* `get3DGaussianKernel` feeds a torch tensor to `np.repeat`; the NumPy-2 deprecation
  warning this raises is silenced.
"""
import warnings

import numpy as np
import torch
import torch.nn as nn

# --------------------------------------------------------------------------------------------
# Shared
# --------------------------------------------------------------------------------------------


def euler2mat(angle):
    """Convert euler angles to rotation matrix (verbatim from both repositories).
    :param angle: [3] or [b, 3]
    :return rotmat: [3] or [b, 3, 3]
    """
    if len(angle.size()) == 1:
        x, y, z = angle[0], angle[1], angle[2]
        _dim = 0
        _view = [3, 3]
    elif len(angle.size()) == 2:
        b, _ = angle.size()
        x, y, z = angle[:, 0], angle[:, 1], angle[:, 2]
        _dim = 1
        _view = [b, 3, 3]
    else:
        assert False

    cosz = torch.cos(z)
    sinz = torch.sin(z)
    zero = z.detach() * 0
    one = zero.detach() + 1
    zmat = torch.stack([cosz, -sinz, zero,
                        sinz, cosz, zero,
                        zero, zero, one], dim=_dim).reshape(_view)

    cosy = torch.cos(y)
    siny = torch.sin(y)
    ymat = torch.stack([cosy, zero, siny,
                        zero, one, zero,
                        -siny, zero, cosy], dim=_dim).reshape(_view)

    cosx = torch.cos(x)
    sinx = torch.sin(x)
    xmat = torch.stack([one, zero, zero,
                        zero, cosx, -sinx,
                        zero, sinx, cosx], dim=_dim).reshape(_view)

    rot_mat = xmat @ ymat @ zmat
    return rot_mat


# --------------------------------------------------------------------------------------------
# PointCLIP (V1): trainers/mv_utils_zs.py and trainers/mv_utils_fs.py
# --------------------------------------------------------------------------------------------


def distribute(depth, _x, _y, size_x, size_y, image_height, image_width):
    assert size_x % 2 == 0 or size_x == 1
    assert size_y % 2 == 0 or size_y == 1
    batch, _ = depth.size()
    epsilon = torch.tensor([1e-12], requires_grad=False, device=depth.device)
    _i = torch.linspace(-size_x / 2, (size_x / 2) - 1, size_x, requires_grad=False, device=depth.device)
    _j = torch.linspace(-size_y / 2, (size_y / 2) - 1, size_y, requires_grad=False, device=depth.device)

    extended_x = _x.unsqueeze(2).repeat([1, 1, size_x]) + _i  # [batch, num_points, size_x]
    extended_y = _y.unsqueeze(2).repeat([1, 1, size_y]) + _j  # [batch, num_points, size_y]

    extended_x = extended_x.unsqueeze(3).repeat([1, 1, 1, size_y])  # [batch, num_points, size_x, size_y]
    extended_y = extended_y.unsqueeze(2).repeat([1, 1, size_x, 1])  # [batch, num_points, size_x, size_y]

    extended_x.ceil_()
    extended_y.ceil_()

    value = depth.unsqueeze(2).unsqueeze(3).repeat([1, 1, size_x, size_y])

    # all points that will be finally used
    masked_points = ((extended_x >= 0)
                     * (extended_x <= image_height - 1)
                     * (extended_y >= 0)
                     * (extended_y <= image_width - 1)
                     * (value >= 0))

    # to prevent error
    extended_x = (extended_x % image_height)
    extended_y = (extended_y % image_width)

    weight = (masked_points.float()
              * (1 / (value + epsilon)))  # [batch, num_points, size_x, size_y]
    weighted_value = value * weight

    weight = weight.view([batch, -1])
    weighted_value = weighted_value.view([batch, -1])

    coordinates = (extended_x.view([batch, -1]) * image_width) + extended_y.view([batch, -1])
    weight_scattered = torch.zeros(
        [batch, image_width * image_height],
        device=depth.device).scatter_add(1, coordinates.long(), weight)

    masked_zero_weight_scattered = (weight_scattered == 0.0)
    weight_scattered += masked_zero_weight_scattered.float()

    weighed_value_scattered = torch.zeros(
        [batch, image_width * image_height],
        device=depth.device).scatter_add(1, coordinates.long(), weighted_value)

    return weighed_value_scattered, weight_scattered


def points2depth(points, image_height, image_width, size_x=4, size_y=4):
    epsilon = torch.tensor([1e-12], requires_grad=False, device=points.device)
    coord_x = (points[:, :, 0] / (points[:, :, 2] + epsilon)) * (image_width / image_height)
    coord_y = (points[:, :, 1] / (points[:, :, 2] + epsilon))

    batch, total_points, _ = points.size()
    depth = points[:, :, 2]  # [batch, num_points]
    _x = ((coord_x + 1) * image_height) / 2
    _y = ((coord_y + 1) * image_width) / 2

    weighed_value_scattered, weight_scattered = distribute(
        depth=depth, _x=_x, _y=_y, size_x=size_x, size_y=size_y,
        image_height=image_height, image_width=image_width)

    depth_recovered = (weighed_value_scattered / weight_scattered).view([batch, image_height, image_width])
    return depth_recovered


class PCViews:
    """PointCLIP's projector; `fewshot=False` is mv_utils_zs.py, `fewshot=True` mv_utils_fs.py."""

    def __init__(self, fewshot=False):
        self.fewshot = fewshot
        if not fewshot:
            self.resolution = RESOLUTION = 128
            TRANS = -1.6
            _views = np.asarray([
                [[0 * np.pi / 2, 0, np.pi / 2], [0, 0, TRANS]],
                [[1 * np.pi / 2, 0, np.pi / 2], [0, 0, TRANS]],
                [[2 * np.pi / 2, 0, np.pi / 2], [0, 0, TRANS]],
                [[3 * np.pi / 2, 0, np.pi / 2], [0, 0, TRANS]],
                [[0, -np.pi / 2, np.pi / 2], [0, 0, TRANS]],
                [[0, np.pi / 2, np.pi / 2], [0, 0, TRANS]]])
        else:
            self.resolution = RESOLUTION = 224
            TRANS = -1.4
            _views = np.asarray([
                [[0 * np.pi / 2, 0, np.pi / 2], [0, 0, TRANS]],
                [[1 * np.pi / 2, 0, np.pi / 2], [0, 0, TRANS]],
                [[2 * np.pi / 2, 0, np.pi / 2], [0, 0, TRANS]],
                [[3 * np.pi / 2, 0, np.pi / 2], [0, 0, TRANS]],
                [[5 * np.pi / 4, -np.pi / 4, np.pi / 2], [0, 0, TRANS]],
                [[5 * np.pi / 4, np.pi / 4, np.pi / 2], [0, 0, TRANS]],
                [[7 * np.pi / 4, -np.pi / 4, np.pi / 2], [0, 0, TRANS]],
                [[7 * np.pi / 4, np.pi / 4, np.pi / 2], [0, 0, TRANS]],
                [[0, -np.pi / 2, np.pi / 2], [0, 0, TRANS]],
                [[0, np.pi / 2, np.pi / 2], [0, 0, TRANS]]])
        self.num_views = _views.shape[0]
        angle = torch.tensor(_views[:, 0, :]).float()
        self.rot_mat = euler2mat(angle).transpose(1, 2)
        self.translation = torch.tensor(_views[:, 1, :]).float()
        self.translation = self.translation.unsqueeze(1)

    def get_img(self, points):
        """points [B, N, 3] -> img [B * num_views, RESOLUTION, RESOLUTION]"""
        b, _, _ = points.shape
        v = self.translation.shape[0]
        _points = self.point_transform(
            points=torch.repeat_interleave(points, v, dim=0),
            rot_mat=self.rot_mat.repeat(b, 1, 1),
            translation=self.translation.repeat(b, 1, 1))
        img = points2depth(points=_points, image_height=self.resolution, image_width=self.resolution,
                           size_x=1, size_y=1)
        return img

    @staticmethod
    def point_transform(points, rot_mat, translation):
        rot_mat = rot_mat.to(points.device)
        translation = translation.to(points.device)
        points = torch.matmul(points, rot_mat)
        points = points - translation
        return points

    def mv_proj(self, pc):
        """CLIP input as built by PointCLIP_ZS.mv_proj (zero-shot: repeat + upsample to 224) or
        PointCLIP_Model.mv_proj (few-shot: repeat only, the maps are already 224 px)."""
        img = self.get_img(pc)
        img = img.unsqueeze(1).repeat(1, 3, 1, 1)
        if not self.fewshot:
            img = torch.nn.functional.interpolate(img, size=(224, 224), mode='bilinear', align_corners=True)
        return img


# --------------------------------------------------------------------------------------------
# PointCLIP V2: zeroshot_cls/trainers/mv_utils_zs.py
# --------------------------------------------------------------------------------------------

TRANS = -1.5

params = {'maxpoolz': 1, 'maxpoolxy': 7, 'maxpoolpadz': 0, 'maxpoolpadxy': 2,
          'convz': 1, 'convxy': 3, 'convsigmaxy': 3, 'convsigmaz': 1, 'convpadz': 0, 'convpadxy': 1,
          'imgbias': 0., 'depth_bias': 0.2, 'obj_ratio': 0.8, 'bg_clr': 0.0,
          'resolution': 112, 'depth': 8}


def get2DGaussianKernel(ksize, sigma=0):
    center = ksize // 2
    xs = (np.arange(ksize, dtype=np.float32) - center)
    kernel1d = np.exp(-(xs ** 2) / (2 * sigma ** 2))
    kernel = kernel1d[..., None] @ kernel1d[None, ...]
    kernel = torch.from_numpy(kernel)
    kernel = kernel / kernel.sum()
    return kernel


def get3DGaussianKernel(ksize, depth, sigma=2, zsigma=2):
    kernel2d = get2DGaussianKernel(ksize, sigma)
    zs = (np.arange(depth, dtype=np.float32) - depth // 2)
    zkernel = np.exp(-(zs ** 2) / (2 * zsigma ** 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        kernel3d = np.repeat(kernel2d[None, :, :], depth, axis=0) * zkernel[:, None, None]
    kernel3d = kernel3d / torch.sum(kernel3d)
    return kernel3d


class Grid2Image(nn.Module):
    """Maxpool: densifying the grid; Convolution: smoothing via Gaussian; Maximize: squeezing."""

    def __init__(self):
        super().__init__()
        self.maxpool = nn.MaxPool3d((params['maxpoolz'], params['maxpoolxy'], params['maxpoolxy']),
                                    stride=1, padding=(params['maxpoolpadz'], params['maxpoolpadxy'],
                                                       params['maxpoolpadxy']))
        self.conv = torch.nn.Conv3d(1, 1, kernel_size=(params['convz'], params['convxy'], params['convxy']),
                                    stride=1, padding=(params['convpadz'], params['convpadxy'], params['convpadxy']),
                                    bias=True)
        kn3d = get3DGaussianKernel(params['convxy'], params['convz'], sigma=params['convsigmaxy'],
                                   zsigma=params['convsigmaz'])
        self.conv.weight.data = torch.Tensor(kn3d).repeat(1, 1, 1, 1, 1)
        self.conv.bias.data.fill_(0)

    def forward(self, x):
        x = self.maxpool(x.unsqueeze(1))
        x = self.conv(x)
        img = torch.max(x, dim=2)[0]
        img = img / torch.max(torch.max(img, dim=-1)[0], dim=-1)[0][:, :, None, None]
        img = 1 - img
        img = img.repeat(1, 3, 1, 1)
        return img


def points2grid(points, resolution=params['resolution'], depth=params['depth']):
    """points [B, _, 3] -> grid [B * num_views, depth, resolution, resolution]"""
    batch, pnum, _ = points.shape

    pmax, pmin = points.max(dim=1)[0], points.min(dim=1)[0]
    pcent = (pmax + pmin) / 2
    pcent = pcent[:, None, :]
    prange = (pmax - pmin).max(dim=-1)[0][:, None, None]
    points = (points - pcent) / prange * 2.
    points[:, :, :2] = points[:, :, :2] * params['obj_ratio']

    depth_bias = params['depth_bias']
    _x = (points[:, :, 0] + 1) / 2 * resolution
    _y = (points[:, :, 1] + 1) / 2 * resolution
    _z = ((points[:, :, 2] + 1) / 2 + depth_bias) / (1 + depth_bias) * (depth - 2)

    _x.ceil_()
    _y.ceil_()
    z_int = _z.ceil()

    _x = torch.clip(_x, 1, resolution - 2)
    _y = torch.clip(_y, 1, resolution - 2)
    _z = torch.clip(_z, 1, depth - 2)

    coordinates = z_int * resolution * resolution + _y * resolution + _x
    grid = torch.ones([batch, depth, resolution, resolution], device=points.device).view(batch, -1) * params['bg_clr']

    # torch_scatter.scatter(_z, coordinates.long(), dim=1, out=grid, reduce="max")
    grid = grid.scatter_reduce(1, coordinates.long(), _z, reduce="amax", include_self=True)
    grid = grid.reshape((batch, depth, resolution, resolution)).permute((0, 1, 3, 2))
    return grid


class Realistic_Projection:
    def __init__(self):
        _views = np.asarray([
            [[1 * np.pi / 4, 0, np.pi / 2], [-0.5, -0.5, TRANS]],
            [[3 * np.pi / 4, 0, np.pi / 2], [-0.5, -0.5, TRANS]],
            [[5 * np.pi / 4, 0, np.pi / 2], [-0.5, -0.5, TRANS]],
            [[7 * np.pi / 4, 0, np.pi / 2], [-0.5, -0.5, TRANS]],
            [[0 * np.pi / 2, 0, np.pi / 2], [-0.5, -0.5, TRANS]],
            [[1 * np.pi / 2, 0, np.pi / 2], [-0.5, -0.5, TRANS]],
            [[2 * np.pi / 2, 0, np.pi / 2], [-0.5, -0.5, TRANS]],
            [[3 * np.pi / 2, 0, np.pi / 2], [-0.5, -0.5, TRANS]],
            [[0, -np.pi / 2, np.pi / 2], [-0.5, -0.5, TRANS]],
            [[0, np.pi / 2, np.pi / 2], [-0.5, -0.5, TRANS]],
        ])
        # adding some bias to the view angle to reveal more surface
        _views_bias = np.asarray([
            [[0, np.pi / 9, 0], [-0.5, 0, TRANS]],
            [[0, np.pi / 9, 0], [-0.5, 0, TRANS]],
            [[0, np.pi / 9, 0], [-0.5, 0, TRANS]],
            [[0, np.pi / 9, 0], [-0.5, 0, TRANS]],
            [[0, np.pi / 9, 0], [-0.5, 0, TRANS]],
            [[0, np.pi / 9, 0], [-0.5, 0, TRANS]],
            [[0, np.pi / 9, 0], [-0.5, 0, TRANS]],
            [[0, np.pi / 9, 0], [-0.5, 0, TRANS]],
            [[0, np.pi / 15, 0], [-0.5, 0, TRANS]],
            [[0, np.pi / 15, 0], [-0.5, 0, TRANS]],
        ])
        self.num_views = _views.shape[0]

        angle = torch.tensor(_views[:, 0, :]).float()
        self.rot_mat = euler2mat(angle).transpose(1, 2)
        angle2 = torch.tensor(_views_bias[:, 0, :]).float()
        self.rot_mat2 = euler2mat(angle2).transpose(1, 2)

        self.translation = torch.tensor(_views[:, 1, :]).float()
        self.translation = self.translation.unsqueeze(1)

        self.grid2image = Grid2Image()

    def get_img(self, points):
        """points [B, N, 3] -> img [B * num_views, 3, 110, 110]"""
        b, _, _ = points.shape
        v = self.translation.shape[0]
        _points = self.point_transform(
            points=torch.repeat_interleave(points, v, dim=0),
            rot_mat=self.rot_mat.repeat(b, 1, 1),
            rot_mat2=self.rot_mat2.repeat(b, 1, 1),
            translation=self.translation.repeat(b, 1, 1))
        grid = points2grid(points=_points, resolution=params['resolution'], depth=params['depth']).squeeze()
        img = self.grid2image.to(points.device)(grid)
        return img

    @staticmethod
    def point_transform(points, rot_mat, rot_mat2, translation):
        rot_mat = rot_mat.to(points.device)
        rot_mat2 = rot_mat2.to(points.device)
        translation = translation.to(points.device)
        points = torch.matmul(points, rot_mat)
        points = torch.matmul(points, rot_mat2)
        points = points - translation
        return points

    def real_proj(self, pc, imsize=224):
        """zeroshot_cls/trainers/zeroshot.py::PointCLIPV2_ZS.real_proj"""
        img = self.get_img(pc)
        img = torch.nn.functional.interpolate(img, size=(imsize, imsize), mode='bilinear', align_corners=True)
        return img
