"""ablab.spec"""
