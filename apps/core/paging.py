"""Pages of a list whose cost does not grow with the list: the rows of one page and a count that stops at
a bound, so the jobs list of a project with 100,000 jobs reads what it reads with 100."""

from __future__ import annotations

from functools import cached_property

from django.core.paginator import Paginator


class BoundedPaginator(Paginator):
    """Django's paginator with the count bounded (SELECT COUNT(*) over at most `bound` + 1 rows): past the
    bound the last page is `bound` / per_page, and the page says there are more (filters or another
    sort reach them)."""

    bound = 1000

    @cached_property
    def count(self) -> int:
        return int(self.object_list[: self.bound + 1].count())  # type: ignore[attr-defined]  # a QuerySet

    @property
    def more(self) -> bool:
        """More rows than the bound: the pages show the first `bound` of them."""
        return self.count > self.bound

    @cached_property
    def num_pages(self) -> int:
        return super().num_pages if not self.more else self.bound // self.per_page
