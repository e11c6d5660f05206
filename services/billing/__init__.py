"""billing: invoices, credit notes, freight charges and gapless number series (the ERP feed)."""
