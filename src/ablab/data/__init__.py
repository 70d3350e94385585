"""ablab.data"""
