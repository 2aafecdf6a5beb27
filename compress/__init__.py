"""Compression of searched winners (structured pruning, int8 quantization, recovery, export).

Not implemented yet: tracked in the issue "Compression of the winners". The search writes fp32
checkpoints (`runs/<study>/checkpoints/<arch_id>/model.pt`) that this package will consume.
"""
