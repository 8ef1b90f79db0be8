"""The Redis store's layout, owned in one place: key names, typed codecs and every Lua script.

The processor and the API reach Redis's keys only through this package.
"""
