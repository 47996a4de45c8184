"""CACH: the category-agnostic change head of Seg2Change."""
