"""``popmix report``: a finished search or bracket, read from its folder, as one HTML page and
its figures. (What a search writes is built in :mod:`popmix.tune`; the files' formats are in
:mod:`popmix.records`.)"""
