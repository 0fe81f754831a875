%# A form's error line. Expects: error (None when there is none).
% if error:
<div class="error" role="alert"><strong>Error:</strong> {{ error }}</div>
% end
