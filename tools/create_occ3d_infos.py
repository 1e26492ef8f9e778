"""Write occnet's Occ3D-nuScenes infos from the nuScenes tables (needs nuscenes-devkit).

    python tools/create_occ3d_infos.py --nuscenes-root data/nuscenes \
        [--occ3d-root data/nuscenes] [--version v1.0-trainval] --out-dir data/nuscenes

Reads the nuScenes tables of --version, keeps the key frames that have an Occ3D label
(OCC3D_ROOT/gts/<scene_name>/<sample_token>/labels.npz) and writes
OUT/occ3d_nuscenes_infos_{train,val}.pkl (v1.0-mini: mini_train / mini_val; v1.0-test: test)
with the official nuScenes scene split. Paths are relative to the nuScenes root (labels too,
when the Occ3D root lies inside it). The CVPR 2023 challenge's and BEVDet's infos are read
directly as well (occnet.datasets.occ3d); this tool is for when neither is at hand.
"""
import argparse
import os
import pickle
import sys

from occnet.datasets.occ3d_create import frames_from_nuscenes
from occnet.descriptions import OCC3D_NUSCENES
from occnet.progress import Progress

SPLITS = {'v1.0-trainval': (('train', 'train'), ('val', 'val')),
          'v1.0-mini': (('train', 'mini_train'), ('val', 'mini_val')),
          'v1.0-test': (('test', 'test'),)}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--nuscenes-root', required=True,
                        help='folder holding samples/, sweeps/ and the v1.0-* tables')
    parser.add_argument('--occ3d-root', help='folder holding gts/ (default: --nuscenes-root)')
    parser.add_argument('--version', default='v1.0-trainval', choices=sorted(SPLITS))
    parser.add_argument('--out-dir', required=True)
    return parser.parse_args()


def main():
    args = parse_args()
    try:
        from nuscenes.nuscenes import NuScenes
        from nuscenes.utils import splits
    except ImportError:
        sys.exit('error: tools/create_occ3d_infos.py reads the nuScenes tables with '
                 'nuscenes-devkit: pip install nuscenes-devkit (or use the CVPR 2023 '
                 "challenge's or BEVDet's infos, which occnet reads directly)")
    occ3d_root = args.occ3d_root or args.nuscenes_root
    if not os.path.isdir(os.path.join(occ3d_root, 'gts')):
        sys.exit(f'error: no gts/ folder in {occ3d_root}: extract the Occ3D-nuScenes '
                 'gts.tar.gz there or pass --occ3d-root')
    nusc = NuScenes(version=args.version, dataroot=args.nuscenes_root, verbose=False)
    os.makedirs(args.out_dir, exist_ok=True)
    for split, split_name in SPLITS[args.version]:
        frames, skipped = frames_from_nuscenes(
            nusc, occ3d_root, args.nuscenes_root, getattr(splits, split_name),
            OCC3D_NUSCENES.camera_names, Progress('create_occ3d_infos', f'{split} scenes'))
        path = os.path.join(args.out_dir, f'occ3d_nuscenes_infos_{split}.pkl')
        with open(path, 'wb') as f:
            pickle.dump(dict(infos=frames, metadata=dict(version=args.version,
                                                         dataset=OCC3D_NUSCENES.name)), f)
        print(f'{path}: {len(frames)} frames; {skipped} key frames without an Occ3D label '
              'left out')


if __name__ == '__main__':
    main()
