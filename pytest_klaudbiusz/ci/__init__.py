"""Judging an evaluation against rules and history: quality gates, comparisons, and their pytest
options.
"""
