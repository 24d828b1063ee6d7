"""The Django-free tiled inference engine.

- ``checkpoint``: model building and the checkpoint file format.
- ``decode``: one frame file -> oriented RGB uint8 array.
- ``tiling``: where the 224 px tiles of a frame lie (overlap, border alignment).
- ``predictor``: ``Predictor`` turns frames into score grids (P(bear) per tile).
- ``selection``: candidates merged into detections, uncertain tiles, the audit sample.
- ``crops``: context crops for queued tiles.

Nothing here imports torch at module level except where a model is built, and nothing touches
CUDA before a ``Predictor`` is constructed.
"""
