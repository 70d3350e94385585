"""ablab.report"""
