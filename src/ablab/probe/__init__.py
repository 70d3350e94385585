"""ablab.probe"""
