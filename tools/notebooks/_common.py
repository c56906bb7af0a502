"""Cells shared by several notebooks."""

SETUP = '''\
# --- choose the model and data here -------------------------------------------------
import os
SMOKE = os.environ.get("RFTLAB_SMOKE") == "1"  # CI sets RFTLAB_SMOKE=1: shorter runs, same story
MODEL, PRETRAINED = "rftlab-world", None        # a real CLIP: MODEL, PRETRAINED = "ViT-B-32", "openai"
STEPS = 60 if SMOKE else 150                     # fine-tuning steps on the world
# -------------------------------------------------------------------------------------
import torch
import plotly.graph_objects as go
import rftlab
torch.manual_seed(0)
clip = rftlab.load_model(MODEL, PRETRAINED)
print(f"model: {clip.arch} ({sum(p.numel() for p in clip.model.parameters()) / 1e6:.2f}M parameters), smoke mode: {SMOKE}")'''
