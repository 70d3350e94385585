"""ablab.cli"""
