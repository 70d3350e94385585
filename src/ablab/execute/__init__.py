"""ablab.execute"""
