"""Python use of occnet models without the Runner (contract 12):

    from occnet.apis import init_model, inference_occ
    model = init_model(CONFIG, CHECKPOINT, device='cuda')
    result = inference_occ(model, dict(images=[...], lidar2img=...))  # result['semantics']

docs/inference.md walks through a scene.
"""
from occnet.apis.frame_input import frame_from_info
from occnet.apis.inference import inference_occ
from occnet.apis.init_model import init_model

__all__ = ['frame_from_info', 'inference_occ', 'init_model']
