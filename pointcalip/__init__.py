"""PointCALIP: zero-shot and few-shot point-cloud recognition with CLIP and CALIP attention."""
__version__ = "0.1.0"
