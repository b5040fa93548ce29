"""Multi-view depth projection of point clouds (PointCLIP and PointCLIP V2 projectors)."""
