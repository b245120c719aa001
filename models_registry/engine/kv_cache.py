"""The running batch's KV cache: preallocated buffers that transformers' attention reads through views.

Rows are sequences, columns are cache positions. Every decode step writes one column for all rows at
`end`, so each row's tokens sit in a run of columns ending at `end` (shorter rows are left-padded, a
prompt prefilled after a shared prefix keeps its batch's padding between the two, and the attention
mask hides the padding). transformers sees an ordinary DynamicLayer whose keys and values are views of
the active window [start, end): no torch.cat of the whole cache per step (what one costs:
bench/RESULTS.md, engine).

RoPE is applied before keys are cached, so a row's keys do not care which columns they sit in; only the
per-row position ids (passed to the model) and the mask matter.

The cache never relies on what its buffers hold: attention reads every column of the window, masked or
not (a masked NaN would still poison its row: 0 x NaN), so it keeps one invariant instead: every column
of the window [start, end) of every row is written (a token's keys and values) or zeroed (a shorter
row's padding) before it is read. (A burst of 32 prompts used to zero ~1 GB of grown buffers inside the
step that prefilled them.)

The buffers hold every row the engine may run (max_rows) from the first sequence on: memory is backed
only where rows are written, so rows not in use cost address space, and a burst never copies the cache
into larger buffers under the running batch (measured on 2 Zen 5 vCPUs, float32 SmolLM2, 32 prompts at
once: a 21-row cache grown to 36 rows stalled a step 60-590 ms, mostly faulting in the new buffers; that
VM faults fresh memory in at 1-4 GB/s against 25 GB/s once touched). An idle cache keeps its buffers,
and the memory its rows touched, unless a long sequence widened them: those are dropped once it is idle.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer

_INITIAL_COLUMNS = 256


class _WindowLayer(DynamicLayer):
    """One decoder layer's slice of the batch buffers, presented as a DynamicLayer."""

    def __init__(self, owner: BatchKVCache, index: int) -> None:
        super().__init__()
        self._owner = owner
        self._index = index
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self._owner.write_step(self._index, key_states, value_states)

    def get_seq_length(self) -> int:
        return self._owner.width

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self._owner.width + query_length, 0


class BatchKVCache(Cache):
    def __init__(self, num_layers: int, max_rows: int, max_columns: int) -> None:
        super().__init__(layers=[_WindowLayer(self, index) for index in range(num_layers)])
        self.max_rows = max_rows
        self.max_columns = max_columns
        self.rows = 0
        self.start = 0
        self.end = 0
        self._keys: list[torch.Tensor] = []
        self._values: list[torch.Tensor] = []
        self._mask = torch.zeros(0, 0, dtype=torch.bool)
        self._row_start: list[int] = []  # first column of each row
        self.positions = torch.zeros(0, dtype=torch.long)  # next position id of each row

    @property
    def width(self) -> int:
        return self.end - self.start

    # --- what a decode step uses ------------------------------------------------------------------

    def prepare_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Makes room for one more column; returns the attention mask and position ids of the step."""
        self._ensure_columns(1)
        self._mask[: self.rows, self.end] = True
        attention_mask = self._mask[: self.rows, self.start : self.end + 1]
        return attention_mask, self.positions[: self.rows].unsqueeze(-1)

    def buffers(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Every layer's key and value buffers (rows, heads, columns, dim), for a step that writes and
        reads the window itself (fused.py); valid until the next prepare_step or add_sequence."""
        return self._keys, self._values

    def write_step(self, layer: int, key_states: torch.Tensor, value_states: torch.Tensor):  # type: ignore[no-untyped-def]
        columns = key_states.shape[-2]
        keys, values = self._keys[layer], self._values[layer]
        keys[: self.rows, :, self.end : self.end + columns] = key_states
        values[: self.rows, :, self.end : self.end + columns] = value_states
        return keys[: self.rows, :, self.start : self.end + columns], values[
            : self.rows, :, self.start : self.end + columns
        ]

    def finish_step(self) -> None:
        self.end += 1
        self.positions[: self.rows] += 1

    # --- joining and leaving ----------------------------------------------------------------------

    def add_sequence(self, layer_states: list[tuple[torch.Tensor, torch.Tensor]]) -> int:
        """Adds one prefilled sequence (per layer: keys and values of shape (1, heads, length, dim)).

        Returns its row. The sequence's next position id is its length.
        """
        return self.add_rows(layer_states)

    def add_rows(
        self, layer_states: list[tuple[torch.Tensor, torch.Tensor]], tokens: torch.Tensor | None = None
    ) -> int:
        """Adds prefilled sequences as they come out of one padded prefill: per layer, keys and values
        of shape (sequences, heads, columns, dim); `tokens` (sequences, columns) says which columns
        hold a sequence's tokens (None: all of them). The other columns (left padding, or padding
        between a shared prefix and a prompt's own tokens) join masked, their keys and values zeroed.

        A batch of prompts joins in a few copies per layer, not a few per prompt and layer. Returns
        the first new row; each row's next position id is its number of tokens.
        """
        count, columns = layer_states[0][0].shape[0], layer_states[0][0].shape[-2]
        if tokens is None:
            tokens = torch.ones(count, columns, dtype=torch.bool)
        if not self._keys:
            # Wide enough for the block and the next step's column, in the sizes widening goes by (256
            # doubled): allocating 256 and then widening would write the cache twice (32 rows of a
            # 424-token prompt: 256 columns widened to 512 took 2 s on such a VM).
            needed = _INITIAL_COLUMNS
            while needed < columns + 1:
                needed *= 2
            self._allocate(layer_states[0][0], layer_states[0][1], needed)
        if self.rows == 0:
            self.start = self.end = 0
        first = self.rows
        if first + count > self.max_rows:
            raise RuntimeError(f"batch is full ({self.max_rows} rows)")
        if self.end < columns:  # not enough columns left of `end`: move everyone right
            self._make_room_before_end(columns)
        first_column = self.end - columns
        row_starts = (first_column + tokens.int().argmax(1)).tolist()  # each row's first token
        start = min(self.start, *row_starts) if first else min(row_starts)
        new = slice(first, first + count)
        # The padding is zeroed over the few columns that hold any (left padding runs up to the longest
        # prompt's first token), not over the whole block.
        padded = (~tokens).any(0).nonzero().squeeze(1).tolist()
        lo, hi = (padded[0], padded[-1] + 1) if padded else (0, 0)
        padding = ~tokens[:, None, lo:hi, None].to(self._mask.device)
        for layer, (keys, values) in enumerate(layer_states):
            for buffer, states in ((self._keys[layer], keys), (self._values[layer], values)):
                buffer[:first, :, start : self.start].zero_()  # the other rows' padding, new to the window
                buffer[new, :, start:first_column].zero_()  # the new rows' padding left of their block
                block = buffer[new, :, first_column : self.end]
                block.copy_(states)
                if padded:
                    block[:, :, lo:hi].masked_fill_(padding, 0)
        self._mask[new].zero_()
        self._mask[new, first_column : self.end] = tokens
        self.positions[new] = tokens.sum(1).to(self.positions.device)
        self._row_start.extend(row_starts)
        self.rows += count
        self.start = start
        return first

    def remove_row(self, row: int) -> int | None:
        """Drops a row; the last row moves into its place. Returns the moved row's old index, if any."""
        last = self.rows - 1
        moved = None
        if row != last:
            for keys, values in zip(self._keys, self._values, strict=True):
                keys[row] = keys[last]
                values[row] = values[last]
            self._mask[row] = self._mask[last]
            self.positions[row] = self.positions[last]
            self._row_start[row] = self._row_start[last]
            moved = last
        self._row_start.pop()
        self.rows -= 1
        # Columns that no remaining row uses drop out of the window (no copy, just a narrower view).
        self.start = min(self._row_start, default=self.end)
        if self.rows == 0:
            self._release_if_large()
        return moved

    # --- capacity ---------------------------------------------------------------------------------

    def _allocate(self, sample_keys: torch.Tensor, sample_values: torch.Tensor, columns: int) -> None:
        rows, columns = self.max_rows, min(columns, self.max_columns)
        _, heads, _, key_dim = sample_keys.shape
        value_dim = sample_values.shape[-1]
        options = {"dtype": sample_keys.dtype, "device": sample_keys.device}
        self._keys = [_buffer((rows, heads, columns, key_dim), **options) for _ in self.layers]
        self._values = [_buffer((rows, heads, columns, value_dim), **options) for _ in self.layers]
        self._mask = torch.zeros(rows, columns, dtype=torch.bool, device=sample_keys.device)
        self.positions = torch.zeros(rows, dtype=torch.long, device=sample_keys.device)

    def _ensure_columns(self, extra: int) -> None:
        """Makes sure `extra` more columns fit after `end`."""
        capacity = self._mask.shape[1]
        if self.end + extra <= capacity:
            return
        # Compact first: move the window to column 0. Grow only when the window itself is too wide.
        if self.start > 0:
            self._move_window(-self.start)
            if self.end + extra <= capacity:
                return
        needed = self.end + extra
        if needed > self.max_columns:
            raise RuntimeError(f"sequence longer than {self.max_columns} cache columns")
        grown = min(max(needed, capacity * 2), self.max_columns)
        self._keys = [self._wider(t, 2, grown) for t in self._keys]
        self._values = [self._wider(t, 2, grown) for t in self._values]
        self._mask = self._wider(self._mask, 1, grown)

    def _make_room_before_end(self, length: int) -> None:
        """Moves the window right until `length` columns fit before `end` (compacting it first)."""
        if self.start > 0:
            self._move_window(-self.start)
        offset = length - self.end
        if offset > 0:
            self._ensure_columns(offset + 1)  # the window starts at 0 now: this only grows
            self._move_window(offset)

    def _move_window(self, offset: int) -> None:
        """Moves every row's columns by `offset` (positive: right)."""
        start, end, rows = self.start, self.end, self.rows
        for tensor in (*self._keys, *self._values):
            tensor[:rows, :, start + offset : end + offset] = tensor[:rows, :, start:end].clone()
        window = self._mask[:rows, start:end].clone()
        self._mask[:rows].zero_()
        self._mask[:rows, start + offset : end + offset] = window
        self._row_start = [column + offset for column in self._row_start]
        self.start, self.end = start + offset, end + offset

    def _release_if_large(self) -> None:
        """An idle engine keeps its buffers (see the module's docstring) unless a long sequence widened
        them: those are dropped, and the next sequence allocates anew."""
        if self._mask.shape[1] > _INITIAL_COLUMNS:
            self._keys, self._values = [], []
            self._mask = torch.zeros(0, 0, dtype=torch.bool)
            self.positions = torch.zeros(0, dtype=torch.long)
        self.start = self.end = 0

    def _wider(self, tensor: torch.Tensor, dim: int, size: int) -> torch.Tensor:
        """A wider copy of the rows in use: keys and values allocated (see the module's invariant),
        the mask zeroed; rows not in use are not copied (nor their memory touched)."""
        shape = list(tensor.shape)
        shape[dim] = size
        if not tensor.is_floating_point():
            grown = torch.zeros(shape, dtype=tensor.dtype, device=tensor.device)
        else:
            grown = _buffer(tuple(shape), dtype=tensor.dtype, device=tensor.device)
        grown[: self.rows].narrow(dim, 0, tensor.shape[dim]).copy_(tensor[: self.rows])
        return grown


def _buffer(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Key or value storage, not initialised: memory is backed only where rows are written."""
    return torch.empty(shape, dtype=dtype, device=device)
