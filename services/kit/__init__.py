"""The shared runtime kit every crossdock service runs on.

The kit imports no service. Services import the kit and the generated contracts only.
"""
