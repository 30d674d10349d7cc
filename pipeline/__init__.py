"""Fit a straight line to 2D data: the synthesize → train → evaluate → visualize stages."""
