"""The evaluations dashboard (``pytest --klaud-dashboard``): a Streamlit app over the
tracking store. Streamlit is an optional extra: ``pip install 'pytest-klaudbiusz[dashboard]'``.
"""
