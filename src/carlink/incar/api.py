"""Placeholder: the router is filled in by the people issue's work."""

from fastapi import APIRouter

router = APIRouter()
