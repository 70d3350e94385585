"""ablab.store"""
