"""Past one serial run: result reuse, sharding and merging, running order, the xdist scheduler."""
