"""ablab.runtime"""
