"""Where to Look (Babar & Das, WACV 2021): complementary image pair, CAAM + SSAM, fusion loss."""

from wsolax.methods.where_to_look.attention import CAAM, SSAM, caam, ssam
from wsolax.methods.where_to_look.head import WhereToLookHead
from wsolax.methods.where_to_look.loss import fusion_loss
from wsolax.methods.where_to_look.method import METHOD, WhereToLookHparams
from wsolax.methods.where_to_look.pair import complementary_pair, hidden_mask, scaled_patch_sizes

__all__ = ["CAAM", "METHOD", "SSAM", "WhereToLookHead", "WhereToLookHparams", "caam",
           "complementary_pair", "fusion_loss", "hidden_mask", "scaled_patch_sizes", "ssam"]
