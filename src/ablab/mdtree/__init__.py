"""ablab.mdtree"""
