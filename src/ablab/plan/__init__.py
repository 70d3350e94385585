"""ablab.plan"""
