"""ablab.landscape"""
