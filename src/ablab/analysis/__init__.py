"""ablab.analysis"""
