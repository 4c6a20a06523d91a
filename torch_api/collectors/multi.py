"""Multi-process collectors: not available in this revision yet."""


class MultiSyncCollector:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("MultiSyncCollector is not available in this revision")


class MultiAsyncCollector:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("MultiAsyncCollector is not available in this revision")
